/*
 * c_switch_value: folds an array of signed ints through a dense 64-case switch whose cases
 * only choose a value (the default a large constant), xor-ing each into a hash; the first
 * int is the count. Natively a table of values; for BPF clang emits a compare tree whose
 * leaves set the value before their last compare. The shape of bpf-benchmark's switch.
 */
#include "workload.h"

EXPORT uint64_t bench_c_switch_value(uint8_t *mem, uint64_t len)
{
    const int32_t *arr = (const int32_t *)mem;
    uint64_t hash = 0;
    (void)len;
    for (int32_t i = 1; i <= arr[0]; i++) {
        int32_t val;
        switch (arr[i]) {
        case 0: val = 339564; break;
        case 1: val = 993909; break;
        case 2: val = 158177; break;
        case 3: val = 414003; break;
        case 4: val = 682555; break;
        case 5: val = 50632; break;
        case 6: val = 75955; break;
        case 7: val = 861169; break;
        case 8: val = 561914; break;
        case 9: val = 98703; break;
        case 10: val = 383453; break;
        case 11: val = 611098; break;
        case 12: val = 60817; break;
        case 13: val = 953894; break;
        case 14: val = 532085; break;
        case 15: val = 225128; break;
        case 16: val = 39318; break;
        case 17: val = 90123; break;
        case 18: val = 454711; break;
        case 19: val = 438486; break;
        case 20: val = 73249; break;
        case 21: val = 252354; break;
        case 22: val = 95120; break;
        case 23: val = 577815; break;
        case 24: val = 445141; break;
        case 25: val = 61982; break;
        case 26: val = 867018; break;
        case 27: val = 592922; break;
        case 28: val = 129816; break;
        case 29: val = 993474; break;
        case 30: val = 234084; break;
        case 31: val = 661260; break;
        case 32: val = 657912; break;
        case 33: val = 611317; break;
        case 34: val = 993745; break;
        case 35: val = 64868; break;
        case 36: val = 605137; break;
        case 37: val = 613985; break;
        case 38: val = 415950; break;
        case 39: val = 51999; break;
        case 40: val = 1023678; break;
        case 41: val = 231822; break;
        case 42: val = 48846; break;
        case 43: val = 583706; break;
        case 44: val = 900170; break;
        case 45: val = 139644; break;
        case 46: val = 303678; break;
        case 47: val = 439500; break;
        case 48: val = 151263; break;
        case 49: val = 566951; break;
        case 50: val = 123515; break;
        case 51: val = 598647; break;
        case 52: val = 323467; break;
        case 53: val = 587473; break;
        case 54: val = 855771; break;
        case 55: val = 715132; break;
        case 56: val = 189506; break;
        case 57: val = 108062; break;
        case 58: val = 609852; break;
        case 59: val = 598952; break;
        case 60: val = 669950; break;
        case 61: val = 196998; break;
        case 62: val = 390488; break;
        case 63: val = 102164; break;
        default: val = 987654; break;
        }
        hash ^= (uint64_t)val;
    }
    return hash;
}
