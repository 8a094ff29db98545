//! Maps and kernel helpers end to end: libbpf-style objects built by clang (checked in under
//! `tests/bpf/`, rebuilt and rechecked when clang and libbpf-dev are installed), loaded with
//! the ELF loader after `register_linux_helpers`, run in the interpreter and the JIT (which
//! must agree on every result, error and side effect), and read or written from the host.

use std::sync::{Arc, Mutex};

mod common;

use rbpf::jit::JitMode;
use rbpf::maps::{BPF_ANY, BPF_EXIST, BPF_NOEXIST, MapError, MapType, possible_cpus};
use rbpf::{ExecError, Vm};

fn bpf_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf")
}

fn object(name: &str) -> Vec<u8> {
    std::fs::read(bpf_dir().join(format!("{name}.o"))).unwrap()
}

#[derive(Clone, Copy)]
enum Engine {
    Interpreter,
    Jit,
}

/// A loaded VM whose error output is captured.
struct Loaded {
    vm: Vm,
    engine: Engine,
    printed: Arc<Mutex<Vec<String>>>,
}

fn load(bytes: &[u8], engine: Engine) -> Loaded {
    let mut vm = Vm::new();
    vm.register_linux_helpers().unwrap();
    let printed = Arc::new(Mutex::new(Vec::new()));
    let sink = printed.clone();
    vm.set_error_printer(Some(Box::new(move |s| {
        sink.lock().unwrap().push(s.to_owned())
    })));
    vm.load_elf(bytes, None).unwrap();
    if let Engine::Jit = engine {
        vm.compile(JitMode::Basic).unwrap();
    }
    Loaded {
        vm,
        engine,
        printed,
    }
}

impl Loaded {
    fn exec(&self, mem: &mut [u8]) -> Result<u64, ExecError> {
        match self.engine {
            Engine::Interpreter => self.vm.execute(mem),
            Engine::Jit => self.vm.execute_jit(mem),
        }
    }

    /// Runs `op` of maps_suite.c; r0 as a signed number, or the error text.
    fn op(&self, op: u32, key: u32, value: u64, flags: u64, off: i64) -> Result<i64, String> {
        let mut req = Vec::new();
        req.extend(op.to_le_bytes());
        req.extend(key.to_le_bytes());
        req.extend(value.to_le_bytes());
        req.extend(flags.to_le_bytes());
        req.extend(off.to_le_bytes());
        self.exec(&mut req)
            .map(|r| r as i64)
            .map_err(|e| e.to_string())
    }
}

/// Both engines over the same sequence of operations: identical results and errors.
fn both(ops: &[(u32, u32, u64, u64, i64)]) -> (Loaded, Loaded, Vec<Result<i64, String>>) {
    let bytes = object("maps_suite");
    let interp = load(&bytes, Engine::Interpreter);
    let jit = load(&bytes, Engine::Jit);
    let mut results = Vec::new();
    for &(op, key, value, flags, off) in ops {
        let a = interp.op(op, key, value, flags, off);
        let b = jit.op(op, key, value, flags, off);
        // Addresses differ between VMs: compare the error kinds, not the text.
        let norm = |r: &Result<i64, String>| match r {
            Ok(v) => Ok(*v),
            Err(e) => Err(e.split(" at PC").next().unwrap_or("").to_owned()),
        };
        assert_eq!(norm(&a), norm(&b), "op {op} key {key} value {value}");
        results.push(a);
    }
    (interp, jit, results)
}

const ENOENT: i64 = -2;
const EEXIST: i64 = -17;
const EINVAL: i64 = -22;
const E2BIG: i64 = -7;

#[test]
fn btf_maps_are_created_from_the_object() {
    let l = load(&object("maps_suite"), Engine::Interpreter);
    let info: Vec<(String, MapType, u32, u32, u32)> =
        l.vm.maps()
            .iter()
            .map(|m| {
                let d = m.def();
                (
                    m.name().to_owned(),
                    m.map_type(),
                    d.key_size,
                    d.value_size,
                    d.max_entries,
                )
            })
            .collect();
    assert_eq!(
        info,
        [
            ("array".into(), MapType::Array, 4, 16, 4),
            ("hash".into(), MapType::Hash, 4, 8, 8),
            ("pcpu_array".into(), MapType::PercpuArray, 4, 8, 2),
            ("pcpu_hash".into(), MapType::PercpuHash, 4, 4, 4),
            ("lru".into(), MapType::LruHash, 4, 8, 3),
            ("events".into(), MapType::Ringbuf, 0, 0, 4096),
        ]
    );
}

#[test]
fn array_and_hash_semantics_in_both_engines() {
    let (interp, jit, r) = both(&[
        (0, 1, 5, 0, 0),
        (0, 1, 5, 0, 0),
        (0, 4, 5, 0, 0),
        (1, 2, 9, BPF_ANY, 0),
        (1, 2, 9, BPF_NOEXIST, 0),
        (1, 4, 9, BPF_ANY, 0),
        (1, 2, 9, 7, 0),
        (2, 10, 100, BPF_EXIST, 0),
        (2, 10, 100, BPF_NOEXIST, 0),
        (2, 10, 101, BPF_NOEXIST, 0),
        (2, 10, 102, BPF_ANY, 0),
        (3, 10, 0, 0, 0),
        (4, 10, 0, 0, 0),
        (4, 10, 0, 0, 0),
        (3, 10, 0, 0, 0),
    ]);
    let r: Vec<i64> = r.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        r,
        [
            5, 10, -1, 0, EEXIST, E2BIG, EINVAL, ENOENT, 0, EEXIST, 0, 102, 0, ENOENT, -1
        ]
    );
    for l in [&interp, &jit] {
        let array = l.vm.map("array").unwrap();
        let mut v = [0u8; 16];
        array.lookup(&1u32.to_ne_bytes(), &mut v).unwrap();
        assert_eq!(u64::from_ne_bytes(v[..8].try_into().unwrap()), 10);
        assert_eq!(u64::from_ne_bytes(v[8..].try_into().unwrap()), 20);
        assert_eq!(array.delete(&1u32.to_ne_bytes()), Err(MapError::Invalid));
    }
}

#[test]
fn hash_fills_up_and_host_sees_program_writes() {
    let ops: Vec<_> = (0..9)
        .map(|k| (2, k, u64::from(k) * 3, BPF_ANY, 0))
        .collect();
    let (interp, jit, r) = both(&ops);
    let r: Vec<i64> = r.into_iter().map(Result::unwrap).collect();
    assert_eq!(r, [0, 0, 0, 0, 0, 0, 0, 0, E2BIG]);
    for l in [&interp, &jit] {
        let hash = l.vm.map("hash").unwrap();
        let mut keys = Vec::new();
        let mut key: Option<[u8; 4]> = None;
        let mut next = [0u8; 4];
        while hash
            .next_key(key.as_ref().map(|k| &k[..]), &mut next)
            .is_ok()
        {
            keys.push(u32::from_ne_bytes(next));
            key = Some(next);
        }
        keys.sort_unstable();
        assert_eq!(keys, (0..8).collect::<Vec<_>>());
        // The host writes, the program reads.
        hash.update(&3u32.to_ne_bytes(), &77u64.to_ne_bytes(), BPF_EXIST)
            .unwrap();
        assert_eq!(l.op(3, 3, 0, 0, 0), Ok(77));
    }
}

#[test]
fn per_cpu_and_lru_maps() {
    let (interp, jit, r) = both(&[
        (5, 0, 0, 0, 0),
        (5, 0, 0, 0, 0),
        (5, 2, 0, 0, 0),
        (6, 1, 33, BPF_ANY, 0),
        (6, 1, 34, BPF_NOEXIST, 0),
        (7, 1, 1, 0, 0),
        (7, 2, 2, 0, 0),
        (7, 3, 3, 0, 0),
        (7, 4, 4, 0, 0),
        (18, 0, 0, 0, 0),
    ]);
    let r: Vec<i64> = r.into_iter().map(Result::unwrap).collect();
    let cpu = r[9];
    assert!((0..possible_cpus() as i64).contains(&cpu));
    assert_eq!(&r[..9], [1, 2, -1, 0, EEXIST, 0, 0, 0, 0]);
    for l in [&interp, &jit] {
        let pcpu = l.vm.map("pcpu_array").unwrap();
        let mut all = vec![0u8; pcpu.host_value_size()];
        pcpu.lookup(&0u32.to_ne_bytes(), &mut all).unwrap();
        let sum: u64 = all
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .sum();
        assert_eq!(sum, 2);
        let lru = l.vm.map("lru").unwrap();
        let mut v = [0u8; 8];
        assert_eq!(
            lru.lookup(&1u32.to_ne_bytes(), &mut v),
            Err(MapError::NotFound)
        );
        lru.lookup(&4u32.to_ne_bytes(), &mut v).unwrap();
        assert_eq!(u64::from_ne_bytes(v), 4);
    }
}

#[test]
fn ring_buffer_events_reach_the_host() {
    let (interp, jit, r) = both(&[
        (8, 1, 100, 0, 0),
        (10, 0, 0, 0, 0),
        (9, 0, 0xabcd, 0, 0),
        (8, 2, 200, 0, 0),
    ]);
    assert!(r.iter().all(|x| *x == Ok(0)));
    for l in [&interp, &jit] {
        let rb = l.vm.map("events").unwrap().ringbuf().unwrap();
        let mut got = Vec::new();
        assert_eq!(
            rb.consume(|d| {
                got.push(d.to_vec());
                0
            }),
            Ok(3)
        );
        let word = |d: &[u8], i: usize| u64::from_ne_bytes(d[8 * i..8 * i + 8].try_into().unwrap());
        assert_eq!((word(&got[0], 0), word(&got[0], 1)), (1, 100));
        assert_eq!(got[1].len(), 8);
        assert_eq!(word(&got[1], 0), 0xabcd);
        assert_eq!((word(&got[2], 0), word(&got[2], 1)), (2, 200));
    }
}

#[test]
fn map_values_are_bounded_exactly() {
    let (_, _, r) = both(&[
        (12, 0, 0, 0, 15),
        (11, 0, 0, 0, 15),
        (11, 0, 0, 0, 16),
        (12, 0, 0, 0, 16),
        (11, 0, 0, 0, -1),
        (11, 3, 0, 0, 15),
        (11, 3, 0, 0, 16),
        (13, 0, 0, 0, 15),
        (13, 0, 0, 0, 16),
        (13, 0, 0, 0, -8),
    ]);
    assert_eq!(r[0], Ok(0));
    assert_eq!(r[1], Ok(0x5a));
    for i in [2, 4, 6, 8, 9] {
        // (2: one byte past a value that has a neighbour, 6: past the last one.)
        let Err(e) = &r[i] else {
            panic!("{i}: {:?}", r[i])
        };
        assert!(e.contains("out of bounds memory load"), "{i}: {e}");
    }
    assert!(
        r[3].as_ref()
            .unwrap_err()
            .contains("out of bounds memory store")
    );
    assert_eq!(r[5], Ok(0));
    assert_eq!(r[7], Ok(0));
}

#[test]
fn forged_pointers_are_refused_by_helpers() {
    let l = load(&object("maps_suite"), Engine::Jit);
    let handle = l.vm.map("hash").unwrap().handle();
    let (_, _, r) = both(&[
        (14, 0, 0, 0, 0),
        (14, 0, 0xdead_beef, 0, 0),
        (14, 0, u64::MAX, 0, 0),
        (14, 0, handle, 0, 0), // another VM's map
        (15, 0, 0, 0, 0),
        (15, 0, 0x1000, 0, 0),
        (15, 0, u64::MAX - 1, 0, 0),
    ]);
    assert!(r.iter().all(|x| *x == Ok(0)), "{r:?}");
}

#[test]
fn time_random_cpu_printk_strncmp() {
    let (interp, jit, r) = both(&[
        (16, 0, 0, 0, 0),
        (17, 0, 0, 0, 0),
        (19, 7, 42, 0, 0),
        (20, 0, u64::from(b'o'), 0, 0),
        (20, 0, u64::from(b'a'), 0, 0),
        (20, 0, u64::from(b'z'), 0, 0),
    ]);
    let r: Vec<i64> = r.into_iter().map(Result::unwrap).collect();
    assert_eq!(r[0], 1);
    assert_eq!(r[1], 1);
    assert_eq!(r[2], "key 7 value 42 hello".len() as i64);
    assert_eq!(&r[3..], [0, -1, 1]);
    for l in [&interp, &jit] {
        assert_eq!(*l.printed.lock().unwrap(), ["key 7 value 42 hello"]);
    }
}

#[test]
fn a_map_value_can_be_a_key() {
    let (interp, _, r) = both(&[(1, 0, 6, BPF_ANY, 0), (21, 0, 0, 0, 0), (3, 6, 0, 0, 0)]);
    assert_eq!(r, [Ok(0), Ok(0), Ok(6)]);
    assert!(interp.vm.map("hash").is_some());
}

#[test]
fn legacy_maps_section() {
    for engine in [Engine::Interpreter, Engine::Jit] {
        let l = load(&object("legacy_maps"), engine);
        let m = l.vm.map("counters").unwrap();
        assert_eq!(m.map_type(), MapType::Hash);
        let run = |k: u32| l.exec(&mut k.to_ne_bytes()).unwrap();
        assert_eq!(run(3), 1);
        assert_eq!(run(3), 2);
        assert_eq!(run(4), 1);
        let mut v = [0u8; 8];
        m.lookup(&3u32.to_ne_bytes(), &mut v).unwrap();
        assert_eq!(u64::from_ne_bytes(v), 2);
    }
}

#[test]
fn maps_live_until_unload() {
    let mut l = load(&object("maps_suite"), Engine::Jit);
    let kept = l.vm.map("hash").unwrap().clone();
    l.vm.unload().expect("unload");
    assert!(l.vm.maps().is_empty());
    assert!(l.vm.map("hash").is_none());
    // A host that kept an Arc keeps a usable map.
    kept.update(&1u32.to_ne_bytes(), &1u64.to_ne_bytes(), BPF_ANY)
        .unwrap();
}

#[test]
fn bad_map_definitions_fail_the_load() {
    for (name, expected) in [
        (
            "bad_ringbuf",
            "map 'events': ring buffer max_entries must be a power of 2 and a multiple of 4096",
        ),
        ("bad_map_type", "map 'weird': unsupported map type 99"),
    ] {
        let mut vm = Vm::new();
        vm.register_linux_helpers().unwrap();
        let err = vm.load_elf(&object(name), None).unwrap_err().to_string();
        assert_eq!(err, expected);
        assert!(
            vm.program().is_none() && vm.maps().is_empty(),
            "nothing half loaded"
        );
        vm.load_elf(&object("maps_suite"), None).unwrap();
    }
}

#[test]
fn eight_threads_and_a_host_iterating() {
    let bytes = object("maps_suite");
    for engine in [Engine::Interpreter, Engine::Jit] {
        let l = load(&bytes, engine);
        let hash = l.vm.map("hash").unwrap();
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let l = &l;
                s.spawn(move || {
                    for i in 0..3000u32 {
                        let key = (i * 5 + t) % 12;
                        let r = l.op(2, key, u64::from(i), BPF_ANY, 0).unwrap();
                        assert!(r == 0 || r == E2BIG, "{r}");
                        assert!(l.op(3, key, 0, 0, 0).unwrap() >= -1);
                        if i % 4 == 0 {
                            let r = l.op(4, key, 0, 0, 0).unwrap();
                            assert!(r == 0 || r == ENOENT);
                        }
                        assert_eq!(l.op(0, t % 4, 1, 0, 0).map(|v| v > 0), Ok(true));
                        l.op(5, 0, 0, 0, 0).unwrap();
                    }
                });
            }
            let mut next = [0u8; 4];
            for _ in 0..500 {
                let mut key: Option<[u8; 4]> = None;
                let mut seen = 0;
                while hash
                    .next_key(key.as_ref().map(|k| &k[..]), &mut next)
                    .is_ok()
                    && seen < 100
                {
                    let mut v = [0u8; 8];
                    let _ = hash.lookup(&next, &mut v);
                    assert!(u32::from_ne_bytes(next) < 12);
                    key = Some(next);
                    seen += 1;
                }
                assert!(seen <= 8 + 8, "iteration stays bounded");
            }
        });
        // The array counters were incremented 3000 times per thread without atomics: each
        // of the 4 slots holds at most 2 threads' worth; the per-CPU counters are exact per
        // slot only when threads do not share one, so check the total is plausible.
        let pcpu = l.vm.map("pcpu_array").unwrap();
        let mut all = vec![0u8; pcpu.host_value_size()];
        pcpu.lookup(&0u32.to_ne_bytes(), &mut all).unwrap();
        let sum: u64 = all
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .sum();
        assert!(sum > 0 && sum <= 24_000);
        let _ = BPF_EXIST;
    }
}

/// Rebuilds the test objects with the installed clang and libbpf-dev headers and reruns the
/// suite's key checks on the fresh objects. Skips (with a note) only where clang or
/// `<bpf/bpf_helpers.h>` is missing, and never in CI (`CI` set), where both must be present.
#[test]
fn objects_rebuilt_with_clang_behave_the_same() {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let have_clang = std::process::Command::new(&clang)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let have_libbpf = std::path::Path::new("/usr/include/bpf/bpf_helpers.h").exists();
    if !(have_clang && have_libbpf) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install clang and libbpf-dev"
        );
        eprintln!("skipping: clang or libbpf-dev is not installed");
        return;
    }
    let triple = std::process::Command::new("gcc")
        .arg("-dumpmachine")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let out = std::env::temp_dir().join(format!("rbpf-maps-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let build = |name: &str, debug: bool| -> Vec<u8> {
        let object = out.join(format!("{name}.o"));
        let status = std::process::Command::new(&clang)
            .args(["-target", "bpf", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg(format!("-I/usr/include/{triple}"))
            .arg(if debug { "-g" } else { "-g0" })
            .arg("-c")
            .arg(bpf_dir().join(format!("{name}.c")))
            .arg("-o")
            .arg(&object)
            .status()
            .unwrap();
        assert!(status.success(), "clang failed on {name}.c");
        std::fs::read(&object).unwrap()
    };
    let suite = build("maps_suite", true);
    let tail = load(&build("tail", true), Engine::Jit);
    let second = tail.vm.program_number("second").unwrap();
    tail.vm
        .map("jumps")
        .unwrap()
        .set(&1u32, &second, BPF_ANY)
        .unwrap();
    let mut mem: Vec<u8> = [1u64, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(tail.exec(&mut mem), Ok(2001));
    let looped = load(&build("loop", true), Engine::Jit);
    let mut mem: Vec<u8> = [0u64, 10, 1000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(looped.exec(&mut mem), Ok(45 * 1000 + 10));
    for engine in [Engine::Interpreter, Engine::Jit] {
        let l = load(&suite, engine);
        assert_eq!(l.op(2, 1, 9, BPF_ANY, 0), Ok(0));
        assert_eq!(l.op(3, 1, 0, 0, 0), Ok(9));
        assert_eq!(l.op(8, 1, 2, 0, 0), Ok(0));
        assert!(l.op(11, 3, 0, 0, 16).is_err());
        let legacy = load(&build("legacy_maps", false), engine);
        assert_eq!(legacy.exec(&mut 5u32.to_ne_bytes()), Ok(1));
    }
    let mut vm = Vm::new();
    vm.register_linux_helpers().unwrap();
    assert!(vm.load_elf(&build("bad_ringbuf", true), None).is_err());
    // The example of examples-c/bpf/, rebuilt, against its checked-in object.
    let example = |bytes: &[u8]| {
        let l = load(bytes, Engine::Jit);
        let mut frame = vec![0u8; 54];
        frame[12] = 0x08; // IPv4
        frame[14] = 0x45;
        frame[23] = 6; // TCP
        frame[26..30].copy_from_slice(&[10, 0, 0, 1]);
        frame[47] = 0x02; // SYN
        let r = l.exec(&mut frame).unwrap();
        let flows = l.vm.map("flows").unwrap();
        let mut v = [0u8; 16];
        flows.lookup(&[10, 0, 0, 1], &mut v).unwrap();
        (r, v)
    };
    let std_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-c/bpf");
    let fresh = {
        let object = out.join("flow_counter.o");
        let status = std::process::Command::new(&clang)
            .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Wextra", "-Werror"])
            .arg(format!("-I/usr/include/{triple}"))
            .arg("-c")
            .arg(std_dir.join("flow_counter.c"))
            .arg("-o")
            .arg(&object)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(&object).unwrap()
    };
    let checked_in = std::fs::read(std_dir.join("flow_counter.o")).unwrap();
    assert_eq!(example(&fresh), example(&checked_in));
    assert_eq!(example(&fresh).0, 2, "a SYN");
    let _ = std::fs::remove_dir_all(&out);
}

/// Mutated objects with maps (BTF, symbols, relocations, map sections) never crash the loader:
/// each load fails with an error or succeeds with a program that runs.
#[test]
fn mutated_objects_with_maps_never_crash() {
    let original = object("maps_suite");
    let legacy = object("legacy_maps");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    for round in 0..1500 {
        let mut bytes = if round % 4 == 0 {
            legacy.clone()
        } else {
            original.clone()
        };
        for _ in 0..1 + next(4) {
            let at = next(bytes.len());
            bytes[at] = match next(3) {
                0 => next(256) as u8,
                1 => bytes[at] ^ (1 << next(8)),
                _ => 0xff,
            };
        }
        let mut vm = Vm::new();
        vm.register_linux_helpers().unwrap();
        vm.set_error_printer(Some(Box::new(|_| {})));
        if vm.load_elf(&bytes, None).is_ok() {
            let mut req = [0u8; 32];
            let _ = vm.execute(&mut req);
        }
    }
}

/// libbpf's pseudo-map-fd form (`lddw` with src = 1) loads like clang's plain form.
#[test]
fn pseudo_map_fd_lddw_is_accepted() {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};
    let mut bytes = object("maps_suite");
    let file = object::File::parse(&*bytes).unwrap();
    let section = file.section_by_name("xdp").unwrap();
    let (offset, _) = section.file_range().unwrap();
    // The first `lddw` relocated against the map `array`.
    let relocated = section
        .relocations()
        .find(|(_, r)| match r.target() {
            RelocationTarget::Symbol(s) => file.symbol_by_index(s).unwrap().name() == Ok("array"),
            _ => false,
        })
        .map(|(at, _)| at)
        .unwrap();
    let at = (offset + relocated) as usize;
    drop(file);
    assert_eq!(bytes[at], 0x18, "an lddw");
    bytes[at + 1] = 0x11; // dst r1, src 1 (BPF_PSEUDO_MAP_FD)
    for engine in [Engine::Interpreter, Engine::Jit] {
        let l = load(&bytes, engine);
        assert_eq!(l.op(0, 1, 4, 0, 0), Ok(4));
        assert_eq!(l.op(0, 1, 4, 0, 0), Ok(8));
    }
}

/// `bpf_loop`: callbacks get the index and the caller's context (on the caller's stack), 1
/// stops the loop, bad flags and too many iterations are refused; both engines agree.
#[test]
fn bpf_loop_runs_callbacks() {
    let bytes = object("loop");
    let run = |l: &Loaded, op: u64, n: u64, limit: u64| -> Result<i64, String> {
        let mut mem: Vec<u8> = [op, n, limit]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        l.exec(&mut mem)
            .map(|r| r as i64)
            .map_err(|e| e.to_string())
    };
    let interp = load(&bytes, Engine::Interpreter);
    let jit = load(&bytes, Engine::Jit);
    for (op, n, limit, expected) in [
        (0, 10, 1000, 45 * 1000 + 10), // all 10 iterations: 0 + 1 + ... + 9
        (0, 10, 10, 10 * 1000 + 5),    // 0+1+2+3+4 = 10 reaches the limit at index 4: 5 runs
        (0, 0, 5, 0),                  // no iterations
        (1, 4, 0, -22),                // flags != 0
        (2, 0, 0, -7),                 // more than 1 << 23 iterations
        (3, 6, 1000, (3 + 15) * 1000 + 12), // two callbacks in one program
    ] {
        let a = run(&interp, op, n, limit);
        let b = run(&jit, op, n, limit);
        assert_eq!(a, Ok(expected), "op {op} n {n} limit {limit}");
        assert_eq!(a, b);
    }
}

/// `bpf_tail_call`: the caller ends with the target's result; an empty entry or an index out
/// of range returns `-ENOENT` and the caller goes on; a target may tail-call again; both
/// engines agree.
#[test]
fn bpf_tail_call_between_programs() {
    let bytes = object("tail");
    for engine in [Engine::Interpreter, Engine::Jit] {
        let mut l = load(&bytes, engine);
        let second = l.vm.program_number("second").unwrap();
        let third = l.vm.program_number("third").unwrap();
        assert_eq!(l.vm.program_number("entry"), Some(0));
        assert_eq!(l.vm.program_number("nope"), None);
        let jumps = l.vm.map("jumps").unwrap();
        jumps.set(&1u32, &second, BPF_ANY).unwrap();
        jumps.set(&2u32, &third, BPF_ANY).unwrap();
        jumps.set(&3u32, &99u32, BPF_ANY).unwrap(); // no such program
        let run = |l: &Loaded, index: u64| {
            let mut mem: Vec<u8> = [index, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
            let r = l.exec(&mut mem).map(|r| r as i64);
            (r, u64::from_le_bytes(mem[8..16].try_into().unwrap()))
        };
        assert_eq!(run(&l, 1), (Ok(2001), 1));
        assert_eq!(run(&l, 2), (Ok(2011), 11), "third tail-calls second");
        assert_eq!(run(&l, 0), (Ok(ENOENT * 10), 0), "empty entry");
        assert_eq!(run(&l, 3), (Ok(ENOENT * 10), 0), "entry names no program");
        assert_eq!(run(&l, 7), (Ok(ENOENT * 10), 0), "index out of range");
        jumps.remove(&1u32).unwrap();
        assert_eq!(
            run(&l, 2),
            (Ok(3000), 10),
            "third's tail call fails: it goes on"
        );
        l.vm.unload().expect("unload");
        assert_eq!(l.vm.program_number("second"), None);
    }
}

/// A copy of compiled code that outlives its VM keeps the program's maps alive: its inline
/// checks name the maps' value slabs, so an address the program learnt from a lookup while
/// the VM lived must still be the map's memory when the copy writes through it later, never
/// freed memory (docs/sandbox.md, "Copies").
#[test]
fn copies_keep_the_maps_their_checks_name() {
    let l = load(&object("map_pointer"), Engine::Jit);
    let mut code = vec![0u8; l.vm.jit_size().unwrap()];
    l.vm.copy_jit(&mut code).unwrap();
    let copy = common::mapping::Mapping::new(&code);
    let map = std::sync::Arc::downgrade(l.vm.map("values").unwrap());

    // Through the VM: the program stores values[0]'s address in mem[1].
    let mut mem = [0u8; 16];
    assert_eq!(l.exec(&mut mem).unwrap(), 0);
    let value_addr = u64::from_le_bytes(mem[8..16].try_into().unwrap());
    assert_ne!(value_addr, 0);
    drop(l);

    // The VM is gone; the copy still runs and its map is still allocated.
    let map = map
        .upgrade()
        .expect("the copy's context keeps the map alive");
    mem[..8].copy_from_slice(&1u64.to_le_bytes());
    // SAFETY: the mapping holds Basic-mode code librbpf compiled.
    assert_eq!(unsafe { copy.run(JitMode::Basic, &mut mem) }, 1);
    let mut value = [0u8; 8];
    map.lookup(&0u32.to_le_bytes(), &mut value).unwrap();
    assert_eq!(u64::from_le_bytes(value), 42);
}
