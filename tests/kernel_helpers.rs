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
fn map(name: &str, map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> Arc<Map> {
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
    if jit { vm.execute_jit(mem) } else { vm.execute(mem) }
}

/// Runs `text` once in each engine on a copy of `mem` (each engine with its own VM over the
/// same maps); both must give the same r0 and memory, which are returned.
fn both_with(
    text: &str,
    maps: &[Arc<Map>],
    mem: &[u8],
    setup: &dyn Fn(&mut Vm),
) -> (i64, Vec<u8>) {
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
    let (pid, tid, uid, gid) = unsafe { (libc::getpid(), libc::gettid(), libc::getuid(), libc::getgid()) };
    assert_eq!(r0("call 14\nexit", &[]) as u64, ((pid as u64) << 32) | tid as u64);
    assert_eq!(r0("call 15\nexit", &[]) as u64, ((gid as u64) << 32) | uid as u64);
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
    assert_eq!(both("mov %r1, 16\nmov %r2, 4\ncall 16\nexit", &[], &[0; 8]).0, EINVAL);
}

#[test]
fn coarse_clock_moves_forward() {
    let a = r0("call 160\nexit", &[]) as u64;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b = r0("call 160\nexit", &[]) as u64;
    assert!(b > a, "{a} {b}");
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    assert!(now >= b && now - b < 1_000_000_000);
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
        vm.load(&rbpf::asm::assemble_bytes("call 14\nexit").unwrap()).unwrap();
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
            if user { vec![0x7000, 0x7008] } else { vec![0x1000, 0x2000, 0x3000] }
        })))
    };
    let (rc, mem) = both_with(&prog(32, 0), &[], &[0xaa; 32], &provider);
    assert_eq!(rc, 24);
    let words: Vec<u64> = mem.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
    assert_eq!(words, [0x1000, 0x2000, 0x3000, 0]);
    // Skip one frame; a buffer smaller than the stack truncates.
    let (rc, mem) = both_with(&prog(8, 1), &[], &[0; 8], &provider);
    assert_eq!((rc, u64::from_ne_bytes(mem[..8].try_into().unwrap())), (8, 0x2000));
    // The user stack, as build-id entries holding addresses.
    let (rc, mem) = both_with(&prog(64, (1 << 8) | (1 << 11)), &[], &[0; 64], &provider);
    assert_eq!(rc, 64);
    assert_eq!(i32::from_ne_bytes(mem[..4].try_into().unwrap()), 2);
    assert_eq!(u64::from_ne_bytes(mem[24..32].try_into().unwrap()), 0x7000);
    assert_eq!(u64::from_ne_bytes(mem[56..64].try_into().unwrap()), 0x7008);
    // Bad flags, a build id without the user stack, a size that is no multiple: -EINVAL.
    for (size, flags) in [(16, 1u64 << 9), (32, 1 << 11), (12, 0), (48, (1 << 8) | (1 << 11))] {
        assert_eq!(both_with(&prog(size, flags), &[], &[0; 48], &provider).0, EINVAL, "{size} {flags:#x}");
    }
}

// ---- probe reads ---------------------------------------------------------------------------

/// `mem` = 32 bytes: the program reads `size` bytes at `src` into mem[16..] with `helper`.
fn probe_prog(helper: u32, size: u32, src: &str) -> String {
    format!(
        "mov %r6, %r1\nmov %r1, %r6\nadd %r1, 16\nmov %r2, {size}\n{src}\ncall {helper}\nexit"
    )
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
        assert_eq!(both(&probe_prog(helper, 4, "mov %r3, 0"), &[], &mem).0, EFAULT);
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
        let (rc, out) = both(&probe_prog(helper, 16, "mov %r3, %r6\nadd %r3, 24"), &[], &unterminated);
        assert_eq!(rc, EFAULT);
        assert_eq!(&out[16..], &[0; 16]);
    }
}

#[test]
fn the_host_may_open_its_own_memory_to_probe_reads() {
    let secret: Box<[u8; 16]> = Box::new(*b"host-bytes\0zzzzz");
    let addr = secret.as_ptr() as u64;
    let allow = move |vm: &mut Vm| {
        vm.set_probe_read(Some(Box::new(move |a, len| a >= addr && a + len <= addr + 16)))
    };
    let (rc, out) = both_with(&probe_prog(4, 8, &format!("lddw %r3, {addr:#x}")), &[], &[0; 32], &allow);
    assert_eq!(rc, 0);
    assert_eq!(&out[16..24], b"host-byt");
    let (rc, out) = both_with(&probe_prog(45, 16, &format!("lddw %r3, {addr:#x}")), &[], &[0; 32], &allow);
    assert_eq!(rc, 11);
    assert_eq!(&out[16..27], b"host-bytes\0");
    // Outside what the callback accepts: still refused.
    let past = addr + 12;
    assert_eq!(both_with(&probe_prog(4, 8, &format!("lddw %r3, {past:#x}")), &[], &[0; 32], &allow).0, EFAULT);
    // A callback that accepts everything cannot crash the host: unmapped memory is -EFAULT.
    let all = |vm: &mut Vm| vm.set_probe_read(Some(Box::new(|_, _| true)));
    assert_eq!(both_with(&probe_prog(113, 8, "mov %r3, 8"), &[], &[0; 32], &all).0, EFAULT);
    assert_eq!(both_with(&probe_prog(115, 8, "lddw %r3, 0xffff800000000000"), &[], &[0; 32], &all).0, EFAULT);
}
