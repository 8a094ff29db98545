//! The kernel's helpers and map types beyond the basic ones (`docs/maps.md`): identity and
//! time, probe reads, queue/stack/bloom/LPM maps, perf event arrays, redirect maps, spin
//! locks, map-in-map and per-CPU isolation. Each program is assembled with the maps' handles
//! as `lddw` immediates (what the ELF loader gives a map relocation), loaded with the maps,
//! and run in the interpreter and the JIT, which must agree on r0 and on the memory.

use std::sync::Arc;

use rbpf::elf::LinkedElf;
use rbpf::jit::JitMode;
use rbpf::maps::{Map, MapDef, MapType};
use rbpf::{ExecError, Vm};

const EINVAL: i64 = -22;
const EFAULT: i64 = -14;
#[allow(dead_code, reason = "used by the map tests")]
const ENOENT: i64 = -2;
#[allow(dead_code, reason = "used by the map tests")]
const E2BIG: i64 = -7;

/// A map of `map_type`.
fn map(
    name: &str,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> Arc<Map> {
    map_with(name, map_type, key_size, value_size, max_entries, 0, 0)
}

fn map_with(
    name: &str,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    map_extra: u64,
) -> Arc<Map> {
    Arc::new(
        Map::new(
            name,
            MapDef {
                map_type: map_type as u32,
                key_size,
                value_size,
                max_entries,
                map_flags,
                map_extra,
            },
        )
        .unwrap(),
    )
}

/// `text` with `{0}`, `{1}`, … replaced by the handles of `maps`.
fn with_handles(text: &str, maps: &[Arc<Map>]) -> String {
    let mut text = text.to_owned();
    for (i, m) in maps.iter().enumerate() {
        text = text.replace(&format!("{{{i}}}"), &format!("{:#x}", m.handle()));
    }
    text
}

/// A VM with the kernel's helpers running `text` over `maps`, in the interpreter or the JIT.
fn vm(text: &str, maps: &[Arc<Map>], jit: bool, setup: &dyn Fn(&mut Vm)) -> Vm {
    let mut vm = Vm::new();
    vm.register_linux_helpers().unwrap();
    setup(&mut vm);
    let code = rbpf::asm::assemble_bytes(&with_handles(text, maps)).unwrap();
    vm.load_linked(LinkedElf {
        code,
        functions: Vec::new(),
        data_sections: Vec::new(),
        maps: maps.to_vec(),
        programs: Vec::new(),
        warnings: Vec::new(),
    })
    .unwrap();
    if jit {
        vm.compile(JitMode::Basic).unwrap();
    }
    vm
}

fn exec(vm: &Vm, jit: bool, mem: &mut [u8]) -> Result<u64, ExecError> {
    if jit {
        vm.execute_jit(mem)
    } else {
        vm.execute(mem)
    }
}

/// Runs `text` once in each engine on a copy of `mem` (each engine with its own VM over the
/// same maps); both must give the same r0 and memory, which are returned.
fn both_with(text: &str, maps: &[Arc<Map>], mem: &[u8], setup: &dyn Fn(&mut Vm)) -> (i64, Vec<u8>) {
    let mut results = Vec::new();
    for jit in [false, true] {
        let vm = vm(text, maps, jit, setup);
        let mut m = mem.to_vec();
        let r0 = exec(&vm, jit, &mut m).unwrap_or_else(|e| panic!("jit {jit}: {e}"));
        results.push((r0 as i64, m));
    }
    let b = results.pop().unwrap();
    let a = results.pop().unwrap();
    assert_eq!(a, b, "the interpreter and the JIT disagree");
    a
}

fn both(text: &str, maps: &[Arc<Map>], mem: &[u8]) -> (i64, Vec<u8>) {
    both_with(text, maps, mem, &|_| {})
}

fn r0(text: &str, maps: &[Arc<Map>]) -> i64 {
    both(text, maps, &[0; 8]).0
}

// ---- identity and time -------------------------------------------------------------------

#[test]
fn pid_tgid_and_uid_gid_are_the_threads() {
    // SAFETY: no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: no preconditions.
    let uid = unsafe { libc::getuid() };
    // SAFETY: no preconditions.
    let gid = unsafe { libc::getgid() };
    assert_eq!(
        r0("call 14\nexit", &[]) as u64,
        ((pid as u64) << 32) | tid as u64
    );
    assert_eq!(
        r0("call 15\nexit", &[]) as u64,
        ((gid as u64) << 32) | uid as u64
    );
}

#[test]
fn comm_is_the_thread_name_nul_padded() {
    let name = std::ffi::CString::new("kh-comm-test").unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    // Ask for 8 bytes into mem: 7 characters and a NUL.
    let prog = "mov %r2, 8\ncall 16\nexit";
    let (rc, mem) = both(prog, &[], &[0xff; 12]);
    assert_eq!(rc, 0);
    assert_eq!(&mem[..8], b"kh-comm\0");
    assert_eq!(&mem[8..], &[0xff; 4], "nothing past size");
    // 16 bytes: the whole name, padded with NULs.
    let (rc, mem) = both("mov %r2, 16\ncall 16\nexit", &[], &[0xff; 16]);
    assert_eq!(rc, 0);
    assert_eq!(&mem[..], b"kh-comm-test\0\0\0\0");
    // Size 0, or a buffer the program may not write: -EINVAL.
    assert_eq!(both("mov %r2, 0\ncall 16\nexit", &[], &[0; 8]).0, EINVAL);
    assert_eq!(both("mov %r2, 9\ncall 16\nexit", &[], &[0; 8]).0, EINVAL);
    assert_eq!(
        both("mov %r1, 16\nmov %r2, 4\ncall 16\nexit", &[], &[0; 8]).0,
        EINVAL
    );
}

#[test]
fn coarse_clock_moves_forward() {
    for jit in [false, true] {
        let vm = vm("call 160\nexit", &[], jit, &|_| {});
        let a = exec(&vm, jit, &mut []).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = exec(&vm, jit, &mut []).unwrap();
        assert!(b > a, "{a} {b}");
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-parameter.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        assert!(now >= b && now - b < 1_000_000_000);
    }
}

#[test]
fn smp_processor_id_is_below_the_cpu_count_and_picks_the_slot() {
    let cpus = rbpf::maps::possible_cpus() as i64;
    let pcpu = map("pcpu", MapType::PercpuArray, 4, 8, 1);
    // Write the CPU number into this thread's slot of element 0.
    let prog = "
        call 8
        mov %r6, %r0
        stxw [%r10-4], %r0
        mov %r0, 0
        stw [%r10-4], 0
        lddw %r1, {0}
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        add %r6, 100
        stxdw [%r0], %r6
        sub %r6, 100
    out:
        mov %r0, %r6
        exit";
    let cpu = r0(prog, std::slice::from_ref(&pcpu));
    assert!((0..cpus).contains(&cpu));
    let values: Vec<u64> = pcpu.get_per_cpu(&0u32).unwrap();
    assert_eq!(values[cpu as usize], cpu as u64 + 100);
    for (i, v) in values.iter().enumerate() {
        if i != cpu as usize {
            assert_eq!(*v, 0);
        }
    }
}

#[test]
fn a_host_helper_at_the_same_number_replaces_the_kernels() {
    for jit in [false, true] {
        let mut vm = Vm::new();
        vm.register_linux_helpers().unwrap();
        vm.register_closure(14, Some("my_pid_tgid"), |_, _, _, _, _| 0x1234_0000_5678)
            .unwrap();
        vm.load(&rbpf::asm::assemble_bytes("call 14\nexit").unwrap())
            .unwrap();
        if jit {
            vm.compile(JitMode::Basic).unwrap();
        }
        assert_eq!(exec(&vm, jit, &mut []).unwrap(), 0x1234_0000_5678);
    }
}

#[test]
fn get_stack_reports_the_hosts_stack() {
    // r1 = ctx, r2 = buf (mem), r3 = size, r4 = flags.
    let prog = |size: u32, flags: u64| {
        format!("mov %r2, %r1\nmov %r3, {size}\nlddw %r4, {flags:#x}\ncall 67\nexit")
    };
    // No provider: an empty stack, the buffer zeroed.
    let (rc, mem) = both(&prog(16, 0), &[], &[0xaa; 16]);
    assert_eq!((rc, mem), (0, vec![0; 16]));
    let provider = |vm: &mut Vm| {
        vm.set_stack_provider(Some(Box::new(|user| {
            if user {
                vec![0x7000, 0x7008]
            } else {
                vec![0x1000, 0x2000, 0x3000]
            }
        })))
    };
    let (rc, mem) = both_with(&prog(32, 0), &[], &[0xaa; 32], &provider);
    assert_eq!(rc, 24);
    let words: Vec<u64> = mem
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words, [0x1000, 0x2000, 0x3000, 0]);
    // Skip one frame; a buffer smaller than the stack truncates.
    let (rc, mem) = both_with(&prog(8, 1), &[], &[0; 8], &provider);
    assert_eq!(
        (rc, u64::from_ne_bytes(mem[..8].try_into().unwrap())),
        (8, 0x2000)
    );
    // The user stack, as build-id entries holding addresses.
    let (rc, mem) = both_with(&prog(64, (1 << 8) | (1 << 11)), &[], &[0; 64], &provider);
    assert_eq!(rc, 64);
    assert_eq!(i32::from_ne_bytes(mem[..4].try_into().unwrap()), 2);
    assert_eq!(u64::from_ne_bytes(mem[24..32].try_into().unwrap()), 0x7000);
    assert_eq!(u64::from_ne_bytes(mem[56..64].try_into().unwrap()), 0x7008);
    // Bad flags, a build id without the user stack, a size that is no multiple: -EINVAL.
    for (size, flags) in [
        (16, 1u64 << 9),
        (32, 1 << 11),
        (12, 0),
        (48, (1 << 8) | (1 << 11)),
    ] {
        assert_eq!(
            both_with(&prog(size, flags), &[], &[0; 48], &provider).0,
            EINVAL,
            "{size} {flags:#x}"
        );
    }
}

// ---- probe reads ---------------------------------------------------------------------------

/// `mem` = 32 bytes: the program reads `size` bytes at `src` into mem[16..] with `helper`.
fn probe_prog(helper: u32, size: u32, src: &str) -> String {
    format!("mov %r6, %r1\nmov %r1, %r6\nadd %r1, 16\nmov %r2, {size}\n{src}\ncall {helper}\nexit")
}

#[test]
fn probe_reads_read_what_the_program_may_read() {
    let mut mem = [0u8; 32];
    mem[..8].copy_from_slice(b"abcdefgh");
    for helper in [4, 112, 113] {
        let (rc, out) = both(&probe_prog(helper, 8, "mov %r3, %r6"), &[], &mem);
        assert_eq!(rc, 0);
        assert_eq!(&out[16..24], b"abcdefgh");
        // A host address the program may not read: -EFAULT, the destination zero-filled.
        let forbidden = &mem as *const u8 as u64;
        let (rc, out) = both(
            &probe_prog(helper, 8, &format!("lddw %r3, {forbidden:#x}")),
            &[],
            &[0xee; 32],
        );
        assert_eq!(rc, EFAULT);
        assert_eq!(&out[16..24], &[0; 8]);
        assert_eq!(&out[24..], &[0xee; 8]);
        // Null.
        assert_eq!(
            both(&probe_prog(helper, 4, "mov %r3, 0"), &[], &mem).0,
            EFAULT
        );
        // A destination the program may not write: -EFAULT.
        let prog = "mov %r3, %r1\nmov %r1, 64\nmov %r2, 4\ncall 4\nexit";
        assert_eq!(both(prog, &[], &mem).0, EFAULT);
    }
}

#[test]
fn probe_read_str_returns_the_length_with_the_nul() {
    let mut mem = [0u8; 32];
    mem[..6].copy_from_slice(b"hello\0");
    for helper in [45, 114, 115] {
        let (rc, out) = both(&probe_prog(helper, 16, "mov %r3, %r6"), &[], &mem);
        assert_eq!(rc, 6);
        assert_eq!(&out[16..22], b"hello\0");
        // Truncated: size - 1 bytes and a NUL.
        let (rc, out) = both(&probe_prog(helper, 4, "mov %r3, %r6"), &[], &mem);
        assert_eq!(rc, 4);
        assert_eq!(&out[16..20], b"hel\0");
        // Size 0 reads nothing.
        assert_eq!(both(&probe_prog(helper, 0, "mov %r3, %r6"), &[], &mem).0, 0);
        // A string that runs off the program's memory before its NUL: -EFAULT, zero-filled.
        let unterminated = [b'x'; 32];
        let (rc, out) = both(
            &probe_prog(helper, 16, "mov %r3, %r6\nadd %r3, 24"),
            &[],
            &unterminated,
        );
        assert_eq!(rc, EFAULT);
        assert_eq!(&out[16..], &[0; 16]);
    }
}

#[test]
fn the_host_may_open_its_own_memory_to_probe_reads() {
    let secret: Box<[u8; 16]> = Box::new(*b"host-bytes\0zzzzz");
    let addr = secret.as_ptr() as u64;
    let allow = move |vm: &mut Vm| {
        vm.set_probe_read(Some(Box::new(move |a, len| {
            a >= addr && a + len <= addr + 16
        })))
    };
    let (rc, out) = both_with(
        &probe_prog(4, 8, &format!("lddw %r3, {addr:#x}")),
        &[],
        &[0; 32],
        &allow,
    );
    assert_eq!(rc, 0);
    assert_eq!(&out[16..24], b"host-byt");
    let (rc, out) = both_with(
        &probe_prog(45, 16, &format!("lddw %r3, {addr:#x}")),
        &[],
        &[0; 32],
        &allow,
    );
    assert_eq!(rc, 11);
    assert_eq!(&out[16..27], b"host-bytes\0");
    // Outside what the callback accepts: still refused.
    let past = addr + 12;
    assert_eq!(
        both_with(
            &probe_prog(4, 8, &format!("lddw %r3, {past:#x}")),
            &[],
            &[0; 32],
            &allow
        )
        .0,
        EFAULT
    );
    // A callback that accepts everything cannot crash the host: unmapped memory is -EFAULT.
    let all = |vm: &mut Vm| vm.set_probe_read(Some(Box::new(|_, _| true)));
    assert_eq!(
        both_with(&probe_prog(113, 8, "mov %r3, 8"), &[], &[0; 32], &all).0,
        EFAULT
    );
    assert_eq!(
        both_with(
            &probe_prog(115, 8, "lddw %r3, 0xffff800000000000"),
            &[],
            &[0; 32],
            &all
        )
        .0,
        EFAULT
    );
}

// ---- stateful maps: one VM per engine, each over its own maps ------------------------------

/// The same program in the interpreter and the JIT, each VM with its own copy of the maps
/// (made by the same function), so stateful operations can be compared step by step.
struct Pair {
    vms: Vec<(Vm, bool, Vec<Arc<Map>>)>,
}

impl Pair {
    fn new(text: &str, make: &dyn Fn() -> Vec<Arc<Map>>) -> Pair {
        Pair {
            vms: [false, true]
                .into_iter()
                .map(|jit| {
                    let maps = make();
                    (vm(text, &maps, jit, &|_| {}), jit, maps)
                })
                .collect(),
        }
    }

    /// Runs both; they must agree on r0 (or the error) and on the memory.
    fn run(&self, mem: &[u8]) -> (Result<i64, String>, Vec<u8>) {
        let mut results: Vec<(Result<i64, String>, Vec<u8>)> = self
            .vms
            .iter()
            .map(|(vm, jit, _)| {
                let mut m = mem.to_vec();
                let r = exec(vm, *jit, &mut m).map(|r| r as i64).map_err(|e| {
                    e.to_string()
                        .split(" at PC")
                        .next()
                        .unwrap_or("")
                        .to_owned()
                });
                (r, m)
            })
            .collect();
        let b = results.pop().unwrap();
        let a = results.pop().unwrap();
        assert_eq!(a, b, "the interpreter and the JIT disagree");
        a
    }

    /// Runs both; r0 must be a value, not an error.
    fn r0(&self, mem: &[u8]) -> (i64, Vec<u8>) {
        let (r, m) = self.run(mem);
        (r.unwrap(), m)
    }

    /// Calls `f` on each engine's maps.
    fn each(&self, f: impl Fn(&[Arc<Map>])) {
        for (_, _, maps) in &self.vms {
            f(maps);
        }
    }
}

fn words(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn word(mem: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(mem[8 * i..8 * i + 8].try_into().unwrap())
}

/// mem: [op, value, flags, out]; op 0 push value with flags, 1 pop into out, 2 peek into out
/// (for a bloom filter, peek tests `value`).
const KEYLESS: &str = "
    mov %r6, %r1
    ldxdw %r7, [%r6+0]
    lddw %r1, {0}
    jeq %r7, 0, push
    jeq %r7, 1, pop
    mov %r2, %r6
    add %r2, 24
    jne %r7, 3, peek
    sub %r2, 16
peek:
    call 89
    exit
push:
    mov %r2, %r6
    add %r2, 8
    ldxdw %r3, [%r6+16]
    call 87
    exit
pop:
    mov %r2, %r6
    add %r2, 24
    call 88
    exit";

const EOPNOTSUPP: i64 = -95;
/// `BPF_F_ZERO_SEED`: a bloom filter hashes the same in every map (here: in both engines' maps).
const BPF_F_ZERO_SEED: u32 = 1 << 6;
const ENOSPC: i64 = -28;

fn keyless_op(p: &Pair, op: u64, value: u64, flags: u64) -> (i64, u64) {
    let (r0, mem) = p.r0(&words(&[op, value, flags, 0]));
    (r0, word(&mem, 3))
}

#[test]
fn queue_is_fifo_and_stack_is_lifo() {
    let queue = Pair::new(KEYLESS, &|| vec![map("q", MapType::Queue, 0, 8, 3)]);
    for v in [1, 2, 3] {
        assert_eq!(keyless_op(&queue, 0, v, 0).0, 0);
    }
    assert_eq!(keyless_op(&queue, 0, 4, 0).0, E2BIG, "full");
    assert_eq!(keyless_op(&queue, 0, 4, 1).0, EINVAL, "BPF_NOEXIST");
    assert_eq!(keyless_op(&queue, 0, 4, 4).0, EINVAL, "unknown flag");
    assert_eq!(
        keyless_op(&queue, 0, 4, 2).0,
        0,
        "BPF_EXIST drops the oldest"
    );
    assert_eq!(keyless_op(&queue, 2, 0, 0), (0, 2), "peek");
    assert_eq!(keyless_op(&queue, 1, 0, 0), (0, 2));
    assert_eq!(keyless_op(&queue, 1, 0, 0), (0, 3));
    // The host pushes and pops the same queue.
    queue.each(|m| m[0].push(&9u64.to_le_bytes(), 0).unwrap());
    assert_eq!(keyless_op(&queue, 1, 0, 0), (0, 4));
    queue.each(|m| {
        let mut out = [0u8; 8];
        m[0].peek(&mut out).unwrap();
        assert_eq!(u64::from_le_bytes(out), 9);
        m[0].pop(&mut out).unwrap();
        assert_eq!(m[0].pop(&mut out), Err(rbpf::maps::MapError::NotFound));
    });
    assert_eq!(keyless_op(&queue, 1, 0, 0).0, ENOENT);
    assert_eq!(keyless_op(&queue, 2, 0, 0).0, ENOENT);

    let stack = Pair::new(KEYLESS, &|| vec![map("s", MapType::Stack, 0, 8, 3)]);
    for v in [1, 2, 3] {
        assert_eq!(keyless_op(&stack, 0, v, 0).0, 0);
    }
    assert_eq!(keyless_op(&stack, 0, 4, 0).0, E2BIG);
    assert_eq!(
        keyless_op(&stack, 0, 4, 2).0,
        0,
        "BPF_EXIST drops the oldest (1)"
    );
    assert_eq!(keyless_op(&stack, 2, 0, 0), (0, 4));
    for v in [4, 3, 2] {
        assert_eq!(keyless_op(&stack, 1, 0, 0), (0, v));
    }
    assert_eq!(keyless_op(&stack, 1, 0, 0).0, ENOENT);
    // Keyless maps refuse keys and values of the wrong size at creation.
    let bad = |key, value| {
        Map::new(
            "x",
            MapDef {
                map_type: MapType::Queue as u32,
                key_size: key,
                value_size: value,
                max_entries: 4,
                map_flags: 0,
                map_extra: 0,
            },
        )
    };
    assert!(bad(4, 8).is_err());
    assert!(bad(0, 0).is_err());
}

#[test]
fn queue_pushes_from_many_threads_are_all_kept_in_order() {
    const THREADS: u64 = 4;
    const EACH: u64 = 2000;
    for jit in [false, true] {
        let q = map("q", MapType::Queue, 0, 8, (THREADS * EACH) as u32);
        let vm = vm(KEYLESS, std::slice::from_ref(&q), jit, &|_| {});
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let vm = &vm;
                s.spawn(move || {
                    for i in 0..EACH {
                        let mut mem = words(&[0, (t << 32) | i, 0, 0]);
                        assert_eq!(exec(vm, jit, &mut mem).unwrap(), 0);
                    }
                });
            }
        });
        let mut last = [None::<u64>; THREADS as usize];
        let mut n = 0;
        let mut out = [0u8; 8];
        while q.pop(&mut out).is_ok() {
            let v = u64::from_le_bytes(out);
            let (t, i) = ((v >> 32) as usize, v & 0xffff_ffff);
            assert!(last[t].is_none_or(|prev| prev < i), "FIFO order per thread");
            last[t] = Some(i);
            n += 1;
        }
        assert_eq!(n, THREADS * EACH);
    }
}

#[test]
fn bloom_filter_has_no_false_negatives() {
    let bloom = Pair::new(KEYLESS, &|| {
        vec![map_with(
            "b",
            MapType::BloomFilter,
            0,
            8,
            1000,
            BPF_F_ZERO_SEED,
            3,
        )]
    });
    let present = |v: u64| (v.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    for i in 0..1000 {
        assert_eq!(keyless_op(&bloom, 0, present(i), 0).0, 0);
    }
    for i in 0..1000 {
        assert_eq!(
            keyless_op(&bloom, 3, present(i), 0).0,
            0,
            "no false negative"
        );
    }
    let positives = (0..2000u64)
        .filter(|&i| keyless_op(&bloom, 3, present(i + 5000) & !1, 0).0 == 0)
        .count();
    assert!(positives < 400, "{positives} false positives of 2000");
    assert_eq!(keyless_op(&bloom, 1, 0, 0).0, EOPNOTSUPP, "pop");
    assert_eq!(
        keyless_op(&bloom, 0, 1, 2).0,
        EINVAL,
        "push flags must be BPF_ANY"
    );
    bloom.each(|m| {
        let mut v = present(7).to_le_bytes();
        m[0].peek(&mut v).unwrap();
        m[0].push(&12345u64.to_le_bytes(), 0).unwrap();
        let mut v = 12345u64.to_le_bytes();
        assert_eq!(m[0].lookup(&[], &mut v), Ok(()));
    });
    assert_eq!(keyless_op(&bloom, 3, 12345, 0).0, 0);
    // More than 15 hashes is refused.
    let def = MapDef {
        map_type: MapType::BloomFilter as u32,
        key_size: 0,
        value_size: 8,
        max_entries: 8,
        map_flags: 0,
        map_extra: 16,
    };
    assert!(Map::new("b", def).is_err());
}

// ---- LPM trie --------------------------------------------------------------------------------

/// An IPv4 LPM key: prefix length (host order), then the address (network order).
fn lpm_key(len: u32, addr: [u8; 4]) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&len.to_ne_bytes());
    k[4..].copy_from_slice(&addr);
    k
}

fn lpm_map() -> Arc<Map> {
    map_with(
        "lpm",
        MapType::LpmTrie,
        8,
        8,
        8,
        rbpf::maps::BPF_F_NO_PREALLOC,
        0,
    )
}

/// mem: [key (8 bytes), value, op]; op 0: lookup, r0 = the value modulo 1000 or -1 (and the
/// value grows by 1000 in place); op 1: update key with value (flags 0).
const LPM: &str = "
    mov %r6, %r1
    ldxdw %r7, [%r6+16]
    lddw %r1, {0}
    mov %r2, %r6
    jeq %r7, 1, update
    call 1
    jeq %r0, 0, none
    ldxdw %r7, [%r0]
    mov %r1, %r7
    add %r1, 1000
    stxdw [%r0], %r1
    mov %r0, %r7
    mod %r0, 1000
    exit
none:
    mov %r0, -1
    exit
update:
    mov %r3, %r6
    add %r3, 8
    mov %r4, 0
    call 2
    exit";

fn lpm_mem(key: [u8; 8], value: u64, op: u64) -> Vec<u8> {
    let mut m = key.to_vec();
    m.extend(value.to_le_bytes());
    m.extend(op.to_le_bytes());
    m
}

#[test]
fn lpm_trie_finds_the_longest_prefix() {
    let p = Pair::new(LPM, &|| {
        let m = lpm_map();
        for (len, addr, v) in [
            (8, [10, 0, 0, 0], 1u64),
            (16, [10, 1, 0, 0], 2),
            (24, [10, 1, 2, 0], 3),
            (0, [0; 4], 4),
        ] {
            m.update(&lpm_key(len, addr), &v.to_le_bytes(), 0).unwrap();
        }
        vec![m]
    });
    let lookup = |addr: [u8; 4]| p.r0(&lpm_mem(lpm_key(32, addr), 0, 0)).0;
    assert_eq!(lookup([10, 1, 2, 3]), 3);
    assert_eq!(lookup([10, 1, 3, 3]), 2);
    assert_eq!(lookup([10, 2, 0, 0]), 1);
    assert_eq!(lookup([11, 0, 0, 0]), 4);
    // The lookup key's own prefix length bounds the match.
    assert_eq!(p.r0(&lpm_mem(lpm_key(20, [10, 1, 2, 3]), 0, 0)).0, 2);
    // The program wrote through the value pointer: the host sees it.
    p.each(|m| {
        let mut v = [0u8; 8];
        m[0].lookup(&lpm_key(32, [10, 1, 2, 9]), &mut v).unwrap();
        assert_eq!(u64::from_le_bytes(v), 1003);
        m[0].delete(&lpm_key(0, [0; 4])).unwrap();
        assert_eq!(
            m[0].delete(&lpm_key(0, [0; 4])),
            Err(rbpf::maps::MapError::NotFound)
        );
    });
    assert_eq!(lookup([11, 0, 0, 0]), -1);
    // A program inserts a prefix; bits past the length do not matter.
    assert_eq!(p.r0(&lpm_mem(lpm_key(12, [192, 168, 255, 255]), 7, 1)).0, 0);
    assert_eq!(lookup([192, 175, 1, 1]), 7);
    assert_eq!(lookup([192, 176, 1, 1]), -1);
    // Prefix longer than the data: -EINVAL; full: -ENOSPC.
    assert_eq!(p.r0(&lpm_mem(lpm_key(33, [1, 2, 3, 4]), 7, 1)).0, EINVAL);
    for i in 0..4 {
        assert_eq!(p.r0(&lpm_mem(lpm_key(32, [1, 2, 3, i]), 7, 1)).0, 0);
    }
    assert_eq!(p.r0(&lpm_mem(lpm_key(32, [1, 2, 3, 9]), 7, 1)).0, ENOSPC);
    // Iteration: post-order (more specific first, 0 bits before 1 bits).
    let m = lpm_map();
    for (len, addr) in [
        (8, [10, 0, 0, 0]),
        (16, [10, 1, 0, 0]),
        (24, [10, 1, 2, 0]),
        (0, [0; 4]),
        (8, [9, 0, 0, 0]),
    ] {
        m.update(&lpm_key(len, addr), &[0; 8], 0).unwrap();
    }
    let keys: Vec<[u8; 8]> = m.keys().unwrap();
    assert_eq!(
        keys,
        [
            lpm_key(8, [9, 0, 0, 0]),
            lpm_key(24, [10, 1, 2, 0]),
            lpm_key(16, [10, 1, 0, 0]),
            lpm_key(8, [10, 0, 0, 0]),
            lpm_key(0, [0; 4])
        ]
    );
    // The kernel requires BPF_F_NO_PREALLOC and a data part of 1 to 256 bytes.
    let def = |flags, key| MapDef {
        map_type: MapType::LpmTrie as u32,
        key_size: key,
        value_size: 8,
        max_entries: 4,
        map_flags: flags,
        map_extra: 0,
    };
    assert!(Map::new("l", def(0, 8)).is_err());
    assert!(Map::new("l", def(1, 4)).is_err());
    assert!(Map::new("l", def(1, 261)).is_err());
    assert!(Map::new("l", def(1, 260)).is_ok());
}

// ---- perf event array -------------------------------------------------------------------

/// mem: [flags, size, data...]: `bpf_perf_event_output(ctx, map, flags, mem + 16, size)`.
const PERF: &str = "
    mov %r6, %r1
    lddw %r2, {0}
    ldxdw %r3, [%r6+0]
    mov %r4, %r6
    add %r4, 16
    ldxdw %r5, [%r6+8]
    call 25
    exit";

fn perf_mem(flags: u64, data: &[u8]) -> Vec<u8> {
    let mut m = words(&[flags, data.len() as u64]);
    m.extend(data);
    m
}

/// Records by slot, and lost counts by slot.
type Drained = (Vec<(u32, Vec<u8>)>, Vec<(u32, u64)>);

fn drain(m: &Map) -> Drained {
    let mut records = Vec::new();
    let mut lost = Vec::new();
    let n = m.perf_events().unwrap().consume(
        |cpu, data| {
            records.push((cpu, data.to_vec()));
            0
        },
        |cpu, count| lost.push((cpu, count)),
    );
    assert_eq!(n as usize, records.len());
    (records, lost)
}

#[test]
fn perf_event_output_buffers_records_per_slot() {
    let cpus = rbpf::maps::possible_cpus() as u32;
    let p = Pair::new(PERF, &|| {
        vec![map("events", MapType::PerfEventArray, 4, 4, 0)]
    });
    p.each(|m| assert_eq!(m[0].def().max_entries, cpus, "0 entries: one per CPU"));
    assert_eq!(p.r0(&perf_mem(0xffff_ffff, b"current")).0, 0);
    assert_eq!(p.r0(&perf_mem(0, b"slot zero")).0, 0);
    assert_eq!(p.r0(&perf_mem(u64::from(cpus), b"x")).0, E2BIG);
    assert_eq!(
        p.r0(&perf_mem(1 << 32, b"x")).0,
        EINVAL,
        "BPF_F_CTXLEN_MASK"
    );
    // Data past mem: -EINVAL.
    let mut bad = perf_mem(0, b"abc");
    bad[8..16].copy_from_slice(&64u64.to_le_bytes());
    assert_eq!(p.r0(&bad).0, EINVAL);
    let cpu = rbpf::maps::current_cpu() as u32;
    p.each(|m| {
        let (records, lost) = drain(&m[0]);
        let mut expected = vec![(cpu, b"current".to_vec()), (0, b"slot zero".to_vec())];
        expected.sort_by_key(|r| r.0);
        assert_eq!(records, expected);
        assert!(lost.is_empty());
        // A closed slot (deleted by the host): -ENOENT until it is set again.
        m[0].delete(&0u32.to_ne_bytes()).unwrap();
    });
    assert_eq!(p.r0(&perf_mem(0, b"closed")).0, ENOENT);
    p.each(|m| {
        m[0].update(&0u32.to_ne_bytes(), &7u32.to_ne_bytes(), 0)
            .unwrap()
    });
    assert_eq!(p.r0(&perf_mem(0, b"open")).0, 0);
    p.each(|m| assert_eq!(drain(&m[0]).0, [(0, b"open".to_vec())]));
    // A full slot drops records and counts them.
    let record = vec![0x5a; 4000];
    let fits = rbpf::maps::perf::PERF_SLOT_BYTES / 4016;
    for _ in 0..fits {
        assert_eq!(p.r0(&perf_mem(0, &record)).0, 0);
    }
    assert_eq!(p.r0(&perf_mem(0, &record)).0, ENOSPC);
    assert_eq!(p.r0(&perf_mem(0, &record)).0, ENOSPC);
    p.each(|m| {
        assert_eq!(m[0].perf_events().unwrap().lost(0), 2);
        let (records, lost) = drain(&m[0]);
        assert_eq!(records.len(), fits);
        assert_eq!(lost, [(0, 2)]);
        assert_eq!(m[0].perf_events().unwrap().lost(0), 0);
    });
    assert_eq!(
        p.r0(&perf_mem(0, &record)).0,
        0,
        "room again after consuming"
    );
}

// ---- spin locks ------------------------------------------------------------------------------

/// Increments the u64 at offset 8 of `{0}[0]` (a value starting with a `struct
/// bpf_spin_lock`) without atomics, under the lock.
const LOCKED_INCREMENT: &str = "
    stw [%r10-4], 0
    lddw %r1, {0}
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, out
    mov %r6, %r0
    mov %r1, %r6
    call 93
    jne %r0, 0, out
    ldxdw %r1, [%r6+8]
    add %r1, 1
    stxdw [%r6+8], %r1
    mov %r1, %r6
    call 94
out:
    exit";

#[test]
fn spin_locks_exclude_other_threads() {
    const THREADS: u64 = 4;
    const EACH: u64 = 20_000;
    for jit in [false, true] {
        let counter = map("counter", MapType::Array, 4, 16, 1);
        let vm = vm(
            LOCKED_INCREMENT,
            std::slice::from_ref(&counter),
            jit,
            &|_| {},
        );
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                let vm = &vm;
                s.spawn(move || {
                    for _ in 0..EACH {
                        assert_eq!(exec(vm, jit, &mut []).unwrap(), 0);
                    }
                });
            }
        });
        let value: [u64; 2] = counter.get(&0u32).unwrap();
        assert_eq!(
            value,
            [0, THREADS * EACH],
            "jit {jit}: lock word free, exact total"
        );
    }
}

#[test]
fn spin_lock_pointers_and_pairs_are_checked() {
    let counter = || vec![map("counter", MapType::Array, 4, 16, 1)];
    // A lock on the stack (no map value): -EINVAL.
    let p = Pair::new("mov %r1, %r10\nadd %r1, -8\ncall 93\nexit", &counter);
    assert_eq!(p.r0(&[]).0, EINVAL);
    // Unlocking a lock this thread does not hold: -EINVAL.
    let lookup =
        "stw [%r10-4], 0\nlddw %r1, {0}\nmov %r2, %r10\nadd %r2, -4\ncall 1\nmov %r6, %r0\n";
    let p = Pair::new(&format!("{lookup}mov %r1, %r6\ncall 94\nexit"), &counter);
    assert_eq!(p.r0(&[]).0, EINVAL);
    // Locking twice: -EDEADLK, then the unlock works; a misaligned lock: -EINVAL.
    let p = Pair::new(
        &format!(
            "{lookup}mov %r1, %r6\ncall 93\nmov %r1, %r6\ncall 93\nmov %r7, %r0\n\
             mov %r1, %r6\ncall 94\nlsh %r7, 8\nor %r0, %r7\nexit"
        ),
        &counter,
    );
    assert_eq!(p.r0(&[]).0, -35 << 8);
    let p = Pair::new(
        &format!("{lookup}mov %r1, %r6\nadd %r1, 2\ncall 93\nexit"),
        &counter,
    );
    assert_eq!(p.r0(&[]).0, EINVAL);
}

// ---- per-CPU isolation -----------------------------------------------------------------------

#[test]
fn a_per_cpu_value_pointer_reaches_only_this_threads_slot() {
    let cpus = rbpf::maps::possible_cpus() as i64;
    for (map_type, key_size) in [(MapType::PercpuArray, 4), (MapType::PercpuHash, 4)] {
        let make = || {
            let m = map("pcpu", map_type, key_size, 8, 2);
            let zeros = vec![0u8; 8 * cpus as usize];
            m.update(&0u32.to_ne_bytes(), &zeros, 0).unwrap();
            vec![m]
        };
        let at = |off: i64| {
            format!(
                "stw [%r10-4], 0\nlddw %r1, {{0}}\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
                 jeq %r0, 0, out\nmov %r1, 7\nstxdw [%r0{off:+}], %r1\nmov %r0, 1\nout:\nexit"
            )
        };
        let own = Pair::new(&at(0), &make);
        assert_eq!(own.run(&[]).0, Ok(1));
        // Every other CPU's slot (16 bytes apart: the value rounded up, plus the guard) is
        // refused. (Slots `cpus` apart are this CPU's slots of other elements, which a value
        // pointer may reach as in any map.)
        for k in 1..cpus {
            for off in [16 * k, -16 * k] {
                let p = Pair::new(&at(off), &make);
                let (r, _) = p.run(&[]);
                assert!(
                    r.as_ref().is_err_and(|e| e.contains("out of bounds")),
                    "{map_type:?} offset {off}: {r:?}"
                );
            }
        }
    }
}

// ---- map in map ------------------------------------------------------------------------------

/// r0 = outer[mem[0]] → inner; inner[0] += 5; returns the new value, -1 without an inner
/// map, -2 without an element.
const MAP_IN_MAP: &str = "
    mov %r6, %r1
    lddw %r1, {0}
    mov %r2, %r6
    call 1
    jeq %r0, 0, no_inner
    mov %r1, %r0
    stw [%r10-4], 0
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, no_elem
    ldxdw %r1, [%r0]
    add %r1, 5
    stxdw [%r0], %r1
    mov %r0, %r1
    exit
no_inner:
    mov %r0, -1
    exit
no_elem:
    mov %r0, -2
    exit";

#[test]
fn map_of_maps_lookups_give_inner_maps_the_helpers_accept() {
    for outer_type in [MapType::ArrayOfMaps, MapType::HashOfMaps] {
        let p = Pair::new(MAP_IN_MAP, &|| {
            let outer = map("outer", outer_type, 4, 4, 4);
            let inner_array = map("a", MapType::Array, 4, 8, 1);
            let inner_hash = map("h", MapType::Hash, 4, 8, 1);
            let stranger = map("stranger", MapType::Array, 4, 8, 1);
            outer
                .update(&0u32.to_ne_bytes(), &inner_array.id().to_ne_bytes(), 0)
                .unwrap();
            outer
                .update(&1u32.to_ne_bytes(), &inner_hash.id().to_ne_bytes(), 0)
                .unwrap();
            // A map that is not one of the program's: never reachable.
            outer
                .update(&2u32.to_ne_bytes(), &stranger.id().to_ne_bytes(), 0)
                .unwrap();
            vec![outer, inner_array, inner_hash]
        });
        let run = |key: u32| p.r0(&(key as u64).to_le_bytes()).0;
        assert_eq!(run(0), 5);
        assert_eq!(run(0), 10);
        assert_eq!(run(1), -2, "the hash has no element 0");
        assert_eq!(run(2), -1, "not a map of this program");
        assert_eq!(run(3), -1, "no inner map");
        p.each(|m| {
            let v: u64 = m[1].get(&0u32).unwrap();
            assert_eq!(v, 10);
            // The host reads the inner map's id, and reaches the map through the set.
            let mut id = [0u8; 4];
            m[0].lookup(&0u32.to_ne_bytes(), &mut id).unwrap();
            assert_eq!(u32::from_ne_bytes(id), m[1].id());
            m[0].delete(&0u32.to_ne_bytes()).unwrap();
            assert_eq!(
                m[0].lookup(&0u32.to_ne_bytes(), &mut id),
                Err(rbpf::maps::MapError::NotFound)
            );
            assert_eq!(
                m[0].update(&0u32.to_ne_bytes(), &[0; 4], 0),
                Err(rbpf::maps::MapError::Invalid)
            );
            m[0].update(&0u32.to_ne_bytes(), &m[2].id().to_ne_bytes(), 0)
                .unwrap();
        });
        assert_eq!(run(0), -2);
        // A program cannot update a map of maps.
        let upd = Pair::new(
            "stw [%r10-4], 0\nstw [%r10-8], 1\nlddw %r1, {0}\nmov %r2, %r10\nadd %r2, -4\n\
             mov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 2\nexit",
            &|| vec![map("outer", outer_type, 4, 4, 4)],
        );
        assert_eq!(upd.r0(&[]).0, EINVAL);
    }
}

// ---- a legacy-maps object for the C tests ------------------------------------------------

/// The program of `tests/bpf/kernel_maps.o` (written by [`kernel_maps_object`]): mem is
/// `[op, value]`. op 0 pushes `value` to `queue`; op 1 outputs `value` (8 bytes) to `events`
/// at the current CPU slot; op 2 adds `value` to element 0 of the inner map `outer[0]` holds
/// and returns the sum (-1 without an inner map); op 3 pops `queue` into mem[8..] and
/// returns the helper's result. Map references are `lddw` markers 0x1000 + map index.
const KERNEL_MAPS_PROGRAM: &str = "
    mov %r6, %r1
    ldxdw %r7, [%r6+0]
    jeq %r7, 1, output
    jeq %r7, 2, nested
    lddw %r1, 0x1000
    mov %r2, %r6
    add %r2, 8
    jeq %r7, 3, pop
    mov %r3, 0
    call 87
    exit
pop:
    call 88
    exit
output:
    mov %r1, %r6
    lddw %r2, 0x1001
    lddw %r3, 0xffffffff
    mov %r4, %r6
    add %r4, 8
    mov %r5, 8
    call 25
    exit
nested:
    stw [%r10-4], 0
    lddw %r1, 0x1002
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, none
    mov %r1, %r0
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, none
    ldxdw %r1, [%r0]
    ldxdw %r2, [%r6+8]
    add %r1, %r2
    stxdw [%r0], %r1
    mov %r0, %r1
    exit
none:
    mov %r0, -1
    exit";

/// The maps of `kernel_maps.o`: name and `struct bpf_map_def` fields.
const KERNEL_MAPS: [(&str, [u32; 5]); 4] = [
    ("queue", [MapType::Queue as u32, 0, 8, 4, 0]),
    ("events", [MapType::PerfEventArray as u32, 4, 4, 0, 0]),
    ("outer", [MapType::ArrayOfMaps as u32, 4, 4, 2, 0]),
    ("inner", [MapType::Array as u32, 4, 8, 1, 0]),
];

/// A relocatable eBPF ELF object as clang writes one for legacy maps: the program in section
/// `prog`, `struct bpf_map_def`s in `maps`, and `R_BPF_64_64` relocations of the `lddw`s
/// against the map symbols.
fn kernel_maps_object() -> Vec<u8> {
    let mut code = rbpf::asm::assemble_bytes(KERNEL_MAPS_PROGRAM).unwrap();
    let mut rels = Vec::new();
    for at in (0..code.len()).step_by(8) {
        let imm = i32::from_le_bytes(code[at + 4..at + 8].try_into().unwrap());
        if code[at] == 0x18 && (0x1000..0x1000 + KERNEL_MAPS.len() as i32).contains(&imm) {
            code[at + 4..at + 8].fill(0);
            // Symbols: 0 null, 1 the program, 2.. the maps.
            rels.push((at as u64, (imm - 0x1000) as u64 + 2));
        }
    }
    let mut maps = Vec::new();
    for (_, fields) in KERNEL_MAPS {
        for f in fields {
            maps.extend(f.to_le_bytes());
        }
    }
    let mut strtab = vec![0u8];
    // One string table for section and symbol names, as clang writes (and uBPF reads).
    let name = |table: &mut Vec<u8>, s: &str| {
        let at = table.len() as u32;
        table.extend(s.as_bytes());
        table.push(0);
        at
    };
    // Sections: 1 prog, 2 maps, 3 .rel.prog, 4 .symtab, 5 .strtab.
    let mut symtab = vec![0u8; 24];
    let sym = |symtab: &mut Vec<u8>, name: u32, info: u8, shndx: u16, value: u64, size: u64| {
        symtab.extend(name.to_le_bytes());
        symtab.extend([info, 0]);
        symtab.extend(shndx.to_le_bytes());
        symtab.extend(value.to_le_bytes());
        symtab.extend(size.to_le_bytes());
    };
    let prog_name = name(&mut strtab, "kernel_maps");
    sym(&mut symtab, prog_name, 0x12, 1, 0, code.len() as u64);
    for (i, (map_name, _)) in KERNEL_MAPS.iter().enumerate() {
        let n = name(&mut strtab, map_name);
        sym(&mut symtab, n, 0x11, 2, 20 * i as u64, 20);
    }
    let mut rel = Vec::new();
    for (offset, symbol) in rels {
        rel.extend(offset.to_le_bytes());
        rel.extend(((symbol << 32) | 1).to_le_bytes());
    }
    let names: Vec<u32> = ["prog", "maps", ".rel.prog", ".symtab", ".strtab"]
        .iter()
        .map(|s| name(&mut strtab, s))
        .collect();
    // (name, type, flags, data, link, info, align, entsize)
    type Section<'a> = (u32, u32, u64, &'a [u8], u32, u32, u64, u64);
    let sections: [Section<'_>; 5] = [
        (names[0], 1, 6, &code, 0, 0, 8, 0),
        (names[1], 1, 3, &maps, 0, 0, 4, 0),
        (names[2], 9, 0, &rel, 4, 1, 8, 16),
        (names[3], 2, 0, &symtab, 5, 1, 8, 24),
        (names[4], 3, 0, &strtab, 0, 0, 1, 0),
    ];
    let mut body = Vec::new();
    let mut offsets = Vec::new();
    for s in &sections {
        while (64 + body.len()) % 8 != 0 {
            body.push(0);
        }
        offsets.push(64 + body.len() as u64);
        body.extend(s.3);
    }
    while (64 + body.len()) % 8 != 0 {
        body.push(0);
    }
    let shoff = 64 + body.len() as u64;
    let mut out = Vec::new();
    out.extend(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out.extend(1u16.to_le_bytes()); // ET_REL
    out.extend(247u16.to_le_bytes()); // EM_BPF
    out.extend(1u32.to_le_bytes());
    out.extend(0u64.to_le_bytes()); // entry
    out.extend(0u64.to_le_bytes()); // phoff
    out.extend(shoff.to_le_bytes());
    out.extend(0u32.to_le_bytes()); // flags
    out.extend(64u16.to_le_bytes()); // ehsize
    out.extend(0u16.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(64u16.to_le_bytes()); // shentsize
    out.extend(6u16.to_le_bytes()); // shnum
    out.extend(5u16.to_le_bytes()); // shstrndx
    out.extend(body);
    out.extend([0u8; 64]);
    for (s, offset) in sections.iter().zip(offsets) {
        out.extend(s.0.to_le_bytes());
        out.extend(s.1.to_le_bytes());
        out.extend(s.2.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend(offset.to_le_bytes());
        out.extend((s.3.len() as u64).to_le_bytes());
        out.extend(s.4.to_le_bytes());
        out.extend(s.5.to_le_bytes());
        out.extend(s.6.to_le_bytes());
        out.extend(s.7.to_le_bytes());
    }
    out
}

/// `tests/bpf/kernel_maps.o` (used by `capi-tests/kernel_maps.c`) is what
/// [`kernel_maps_object`] writes; `RBPF_BLESS=1` rewrites it. It loads and runs here too.
#[test]
fn kernel_maps_object_is_up_to_date_and_runs() {
    let bytes = kernel_maps_object();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf/kernel_maps.o");
    if std::env::var_os("RBPF_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap_or_default(),
        bytes,
        "rebless with RBPF_BLESS=1"
    );
    for jit in [false, true] {
        let mut vm = Vm::new();
        vm.register_linux_helpers().unwrap();
        vm.load_elf(&bytes, None).unwrap();
        if jit {
            vm.compile(JitMode::Basic).unwrap();
        }
        let outer = vm.map("outer").unwrap().clone();
        let inner = vm.map("inner").unwrap().clone();
        let run =
            |vm: &Vm, op: u64, value: u64| exec(vm, jit, &mut words(&[op, value])).unwrap() as i64;
        assert_eq!(run(&vm, 0, 5), 0);
        assert_eq!(vm.map("queue").unwrap().def().max_entries, 4);
        assert_eq!(run(&vm, 3, 0), 0);
        assert_eq!(run(&vm, 3, 0), ENOENT);
        assert_eq!(run(&vm, 1, 9), 0);
        assert_eq!(run(&vm, 2, 3), -1);
        outer
            .update(&0u32.to_ne_bytes(), &inner.id().to_ne_bytes(), 0)
            .unwrap();
        assert_eq!(run(&vm, 2, 3), 3);
        assert_eq!(run(&vm, 2, 4), 7);
        let mut n = 0;
        vm.map("events").unwrap().perf_events().unwrap().consume(
            |_, d| {
                n += d.len();
                0
            },
            |_, _| {},
        );
        assert_eq!(n, 8);
    }
}

// ---- random helper calls ---------------------------------------------------------------------

#[allow(dead_code, reason = "each test crate uses a part of it")]
#[path = "common/rng.rs"]
mod rng;

/// Random calls of the kernel helpers with arguments drawn from map handles, pointers into
/// mem (some past its end), into the stack, forged host addresses and small numbers: no
/// crash, and the interpreter and the JIT agree on every result (a non-null lookup result
/// counts as 1: addresses differ between the two VMs' maps) and on the memory.
#[test]
fn random_kernel_helper_calls_agree_and_never_crash() {
    static HOST: [u8; 64] = [0x42; 64];
    // Deterministic helpers (not time, random numbers or printing); spin locks are left out:
    // a random program may return holding one, which the thread keeps (docs/maps.md).
    const HELPERS: [u32; 19] = [
        1, 2, 3, 4, 14, 15, 16, 25, 45, 51, 67, 87, 88, 89, 112, 113, 114, 115, 182,
    ];
    let make = || {
        let inner = map("inner", MapType::Array, 4, 8, 2);
        let outer = map("outer", MapType::ArrayOfMaps, 4, 4, 2);
        outer
            .update(&0u32.to_ne_bytes(), &inner.id().to_ne_bytes(), 0)
            .unwrap();
        let dev = map("dev", MapType::Devmap, 4, 4, 4);
        dev.update(&1u32.to_ne_bytes(), &3u32.to_ne_bytes(), 0)
            .unwrap();
        vec![
            map("queue", MapType::Queue, 0, 8, 4),
            lpm_map(),
            map("events", MapType::PerfEventArray, 4, 4, 0),
            map("array", MapType::Array, 4, 8, 4),
            map("hash", MapType::Hash, 4, 8, 4),
            outer,
            inner,
            dev,
            map_with("bloom", MapType::BloomFilter, 0, 8, 16, BPF_F_ZERO_SEED, 0),
            map("pcpu", MapType::PercpuArray, 4, 8, 2),
        ]
    };
    let host = HOST.as_ptr() as u64;
    let mut rng = rng::Rng(0x5eed_1234);
    for round in 0..150 {
        let mut text = String::from("mov %r6, %r1\nmov %r7, 0\n");
        for _ in 0..8 {
            for reg in 1..=5 {
                let arg = match rng.below(7) {
                    0 => format!("lddw %r{reg}, {{{}}}", rng.below(10)),
                    1 => format!("mov %r{reg}, %r6\nadd %r{reg}, {}", rng.below(80)),
                    2 => format!("mov %r{reg}, %r10\nadd %r{reg}, -{}", 1 + rng.below(64)),
                    3 => format!("mov %r{reg}, {}", rng.below(40)),
                    4 => format!("lddw %r{reg}, {:#x}", host + rng.below(80) as u64),
                    5 => format!("lddw %r{reg}, {:#x}", rng.next() | 0xffff_0000_0000_0000),
                    _ => format!(
                        "lddw %r{reg}, {:#x}",
                        rng.pick(&[0xffff_ffffu64, 1 << 32, 2, 8])
                    ),
                };
                text.push_str(&arg);
                text.push('\n');
            }
            let helper = rng.pick(&HELPERS);
            text.push_str(&format!("call {helper}\n"));
            if helper == 1 {
                text.push_str("jeq %r0, 0, +1\nmov %r0, 1\n");
            }
            text.push_str("lsh %r7, 5\nxor %r7, %r0\n");
        }
        text.push_str("mov %r0, %r7\nexit\n");
        let p = Pair::new(&text, &make);
        let mem: Vec<u8> = (0..64).map(|i| (i * 7 + round) as u8).collect();
        let (r, _) = p.run(&mem);
        assert!(r.is_ok(), "round {round}: {r:?}\n{text}");
    }
}
