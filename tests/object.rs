//! The object API (`rbpf::kernel::object`): clang-built libbpf-style objects under
//! `tests/bpf/object/` with several programs sharing maps and global data, per-program load
//! failures, maps sized by the host, real tail calls, and Debian's libxdp objects when
//! installed. Every run is made in the interpreter and in the JIT.

use rbpf::Vm;
use rbpf::error::ObjectError;
use rbpf::jit::JitMode;
use rbpf::kernel::object::Object;
use rbpf::kernel::program_type::ProgramType;

fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/bpf/object/{name}.o"))
}

#[derive(Clone, Copy, Debug)]
enum Engine {
    Interpreter,
    Jit,
}

const ENGINES: [Engine; 2] = [Engine::Interpreter, Engine::Jit];

/// Compiles every loaded program when `engine` is the JIT.
fn prepare(object: &mut Object, engine: Engine) {
    if let Engine::Jit = engine {
        for program in object.programs_mut() {
            let name = program.name().to_owned();
            if let Some(vm) = program.vm_mut() {
                vm.compile(JitMode::Basic)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

fn words(mem: &[u8]) -> Vec<u64> {
    mem.chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn mem(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// multi.o: the host sizes `seen`, sets `.rodata`'s `factor`, loads; `uses_pid` calls a
/// helper librbpf lacks (240) and fails alone.
fn open_multi(size_seen: bool) -> (Object, Result<(), ObjectError>) {
    let mut object = Object::open(path("multi")).unwrap();
    if size_seen {
        object.set_max_entries("seen", 16).unwrap();
    }
    let rodata = object
        .map("multi.rodata")
        .expect("libbpf's name of .rodata")
        .clone();
    assert!(std::ptr::eq(&**object.map(".rodata").unwrap(), &*rodata));
    assert_eq!(rodata.get::<u32, u64>(&0), Ok(3), "initial value of factor");
    rodata.set(&0u32, &5u64, 0).unwrap();
    let loaded = object.load();
    (object, loaded)
}

#[test]
fn programs_share_maps_and_global_data_and_fail_alone() {
    for engine in ENGINES {
        let (mut object, loaded) = open_multi(true);
        let Err(ObjectError::LoadFailed(lines)) = loaded else {
            panic!("uses_pid must fail: {loaded:?}");
        };
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("program 'uses_pid': "), "{lines:?}");
        let reason = object.program("uses_pid").unwrap().load_error().unwrap();
        assert!(reason.contains("nonexistent function 240"), "{reason}");
        assert!(object.program("uses_pid").unwrap().vm().is_none());
        assert_eq!(object.program("uses_pid").unwrap().fd(), None);
        prepare(&mut object, engine);

        let xdp = object.program("count_kprobe").unwrap();
        assert_eq!(xdp.program_type(), ProgramType::Kprobe);
        assert_eq!(xdp.load_error(), None);
        let tc = object
            .program("tracepoint/sys/count")
            .expect("found by section name");
        assert_eq!(tc.name(), "count_tp");
        assert_eq!(tc.program_type(), ProgramType::Tracepoint);
        assert_eq!(
            object.program("uses_pid").unwrap().program_type(),
            ProgramType::Kprobe
        );

        let mut m = mem(&[7, 0]);
        assert_eq!(xdp.run(&mut m), Ok(2), "{engine:?}");
        assert_eq!(words(&m), [7, 35], "factor 5 set before load, {engine:?}");
        let mut m = mem(&[9, 0]);
        assert_eq!(tc.run(&mut m), Ok(0));
        // counters[1] = 1, total = 100 + 7 (written by count_kprobe, read by count_tp).
        assert_eq!(words(&m), [9, 108], "{engine:?}");

        let counters = object.map("counters").unwrap();
        assert_eq!(counters.get::<u32, u64>(&0), Ok(35));
        assert_eq!(counters.get::<u32, u64>(&1), Ok(1));
        assert_eq!(object.map("seen").unwrap().get::<u64, u64>(&9), Ok(1));
        assert_eq!(object.map(".bss").unwrap().get::<u32, u64>(&0), Ok(2));
        assert_eq!(object.map(".data").unwrap().get::<u32, u64>(&0), Ok(107));
        // Every program's VM holds the object's maps themselves.
        let vm_map = xdp.vm().unwrap().map("counters").unwrap();
        assert!(std::sync::Arc::ptr_eq(vm_map, counters));
        assert!(matches!(
            object.set_max_entries("seen", 4),
            Err(ObjectError::AlreadyLoaded)
        ));
    }
}

#[test]
fn a_map_without_size_fails_the_programs_that_use_it() {
    let (object, loaded) = open_multi(false);
    let Err(ObjectError::LoadFailed(lines)) = loaded else {
        panic!("{loaded:?}")
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    let tc = object.program("count_tp").unwrap().load_error().unwrap();
    assert!(
        tc.contains("'seen'") && tc.contains("max_entries 0"),
        "{tc}"
    );
    assert!(object.program("count_kprobe").unwrap().vm().is_some());
}

#[test]
fn sizes_and_types_are_checked() {
    let mut object = Object::<Vm>::open(path("multi")).unwrap();
    assert!(matches!(
        object.set_max_entries("nope", 1),
        Err(ObjectError::NoSuchMap(_))
    ));
    assert!(matches!(
        object.set_max_entries(".rodata", 2),
        Err(ObjectError::BadSize { .. })
    ));
    let handle = object.map("counters").unwrap().handle();
    let index = object.map_index_by_handle(handle).unwrap();
    object.set_max_entries_at(index, 8).unwrap();
    assert_eq!(
        object.map("counters").unwrap().handle(),
        handle,
        "same address"
    );
    assert_eq!(object.map("counters").unwrap().def().max_entries, 8);
    object
        .program_mut("count_kprobe")
        .unwrap()
        .set_program_type(ProgramType::SocketFilter)
        .unwrap();
    assert!(matches!(
        object.register_helper(256, None, dummy),
        Err(ObjectError::HelperIndex(256))
    ));
    let _ = object.load();
    assert_eq!(
        object.program("count_kprobe").unwrap().program_type(),
        ProgramType::SocketFilter
    );
    assert!(
        object
            .program_mut("count_kprobe")
            .unwrap()
            .set_program_type(ProgramType::Xdp)
            .is_err()
    );
    assert!(matches!(object.load(), Err(ObjectError::AlreadyLoaded)));
}

unsafe extern "C" fn dummy(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut std::ffi::c_void,
) -> u64 {
    0xbeef
}

#[test]
fn host_helpers_apply_to_every_program_and_override_kernel_ones() {
    // 240 is no kernel helper; the host provides it.
    for engine in ENGINES {
        let mut object = Object::<Vm>::open(path("multi")).unwrap();
        object.set_max_entries("seen", 16).unwrap();
        object
            .register_helper(240, Some("host_value"), dummy)
            .unwrap();
        object.load().unwrap();
        prepare(&mut object, engine);
        let mut m = mem(&[1, 0]);
        assert_eq!(object.program("uses_pid").unwrap().run(&mut m), Ok(1));
        assert_eq!(words(&m), [1, 0xbeef]);
    }
}

#[test]
fn tail_calls_replace_frames_and_stop_after_33() {
    for engine in ENGINES {
        let mut object = Object::<Vm>::open(path("chain")).unwrap();
        assert_eq!(object.programs().len(), 41);
        object.load().unwrap();
        prepare(&mut object, engine);
        let chain = object.map("chain").unwrap();
        assert_eq!(
            chain.get::<u32, u32>(&5),
            Ok(object.program("p5").unwrap().fd().unwrap())
        );

        // p0 .. p33 run (33 tail calls); p33's call to p34 fails and p33 returns.
        let mut m = mem(&[0, 0]);
        let r = object.program("p0").unwrap().run(&mut m);
        assert_eq!(r, Ok(1033), "{engine:?}");
        assert_eq!(
            words(&m),
            [34, (-(libc::E2BIG as i64)) as u64],
            "{engine:?}"
        );

        // From p10: 33 more calls, up to p39, whose call to index 40 is out of range.
        let mut m = mem(&[0, 0]);
        assert_eq!(object.program("p10").unwrap().run(&mut m), Ok(1039));
        assert_eq!(words(&m), [30, (-(libc::ENOENT as i64)) as u64]);

        // An empty entry: the tail call fails and the caller goes on.
        chain.remove(&3u32).unwrap();
        let mut m = mem(&[0, 0]);
        assert_eq!(object.program("p0").unwrap().run(&mut m), Ok(1002));
        assert_eq!(words(&m), [3, (-(libc::ENOENT as i64)) as u64]);

        // Without the run driver (plain execution of one VM) every tail call fails.
        let mut m = mem(&[0, 0]);
        let vm = object.program("p0").unwrap().vm().unwrap();
        let r = match engine {
            Engine::Interpreter => vm.execute(&mut m),
            Engine::Jit => vm.execute_jit(&mut m),
        };
        assert_eq!(r, Ok(1000));
        assert_eq!(words(&m), [1, (-(libc::ENOENT as i64)) as u64]);

        // A tail call from a subprogram ends the whole program: sub_caller's own store of
        // 77 never runs. The host fills `jumps` with p39's fd.
        let jumps = object.map("jumps").unwrap();
        let mut m = mem(&[0, 0]);
        assert_eq!(object.program("sub_caller").unwrap().run(&mut m), Ok(7));
        assert_eq!(words(&m), [0, 77], "empty entry: from_sub returns 7");
        let fd = object.program("p39").unwrap().fd().unwrap();
        jumps.set(&0u32, &fd, 0).unwrap();
        let mut m = mem(&[0, 0]);
        assert_eq!(object.program("sub_caller").unwrap().run(&mut m), Ok(1039));
        assert_eq!(words(&m), [1, (-(libc::ENOENT as i64)) as u64]);
    }
}

#[test]
fn malformed_objects_give_errors() {
    let bytes = std::fs::read(path("multi")).unwrap();
    for len in [0, 10, 64, 200, bytes.len() / 2] {
        let r = Object::<Vm>::from_bytes(bytes[..len].to_vec(), "cut");
        assert!(r.is_err(), "{len}");
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let mut copy = bytes.clone();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % copy.len();
            copy[at] = (state >> 32) as u8;
        }
        if let Ok(mut object) = Object::<Vm>::from_bytes(copy, "fuzz") {
            let _ = object.set_max_entries("seen", 4);
            let _ = object.load();
        }
    }
    let err = Object::<Vm>::open("/nonexistent/x.o").unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read /nonexistent/x.o"),
        "{err}"
    );
}

/// Debian's libxdp objects (package libxdp1), when installed: each opens, and each program
/// loads or records why not, in both engines.
#[test]
fn libxdp_objects_open_and_load() {
    let dir =
        std::path::Path::new("/usr/lib").join(format!("{}-linux-gnu/bpf", std::env::consts::ARCH));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipped: {} not found (apt-get install libxdp1)",
            dir.display()
        );
        return;
    };
    let mut seen = 0;
    for entry in entries {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "o") {
            continue;
        }
        seen += 1;
        for engine in ENGINES {
            let mut object =
                Object::<Vm>::open(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(!object.programs().is_empty(), "{}", file.display());
            let _ = object.load();
            for program in object.programs() {
                match program.load_error() {
                    Some(reason) => {
                        assert!(!reason.is_empty());
                        eprintln!("{}: {}: {reason}", file.display(), program.name());
                    }
                    None => assert!(program.vm().is_some()),
                }
            }
            prepare(&mut object, engine);
        }
    }
    eprintln!("{seen} libxdp objects");
}

/// Test runs of an object's program follow its tail calls (`ObjectProgram::test_run`): the
/// frame written by the first program is the one the second decides on, the counters of
/// both move, the redirect of the second is the run's, and a JIT run after
/// `Object::compile_programs` agrees with the interpreter's.
#[test]
fn test_runs_follow_tail_calls() {
    use rbpf::kernel::packet::Redirect;
    use rbpf::kernel::test_run::TestRunOptions;
    for engine in ENGINES {
        let mut object = Object::<Vm>::open(path("xdp_tail")).unwrap();
        object.load().unwrap();
        if let Engine::Jit = engine {
            assert!(object.compile_programs(JitMode::Basic).is_empty());
        }
        let counters = object.map("counters").unwrap().clone();
        let entry = object.program_mut("entry").unwrap();
        for (code, verdict, redirect) in [
            (0u8, 2u32, None),
            (
                1,
                4,
                Some(Redirect::Ifindex {
                    ifindex: 7,
                    flags: 0,
                }),
            ),
            (2, 3, None),
            (3, 1, None),
        ] {
            let mut frame = vec![0u8; 60];
            frame[12] = 0x08;
            frame[14] = code;
            let mut out = vec![0u8; 100];
            let mut opts = TestRunOptions {
                data_in: &frame,
                data_out: Some(&mut out),
                jit: matches!(engine, Engine::Jit),
                ..TestRunOptions::default()
            };
            entry.test_run(&mut opts).unwrap();
            assert_eq!(opts.retval, verdict, "{engine:?} code {code}");
            assert_eq!(opts.redirect, redirect, "{engine:?} code {code}");
            assert_eq!(opts.data_size_out, 60);
            assert_eq!(out[6], 0xee);
        }
        assert_eq!(counters.get::<u32, u64>(&0).unwrap(), 4);
        assert_eq!(counters.get::<u32, u64>(&1).unwrap(), 4);
    }
}

/// Maps of maps declared with BTF initial values (`.values = { [1] = &inner_b, … }`): the
/// outer map holds the inner maps' ids at load, and a program's lookup through it reaches the
/// inner map the host fills, in both engines.
#[test]
fn map_of_maps_initial_values_come_from_btf() {
    for engine in ENGINES {
        let mut object = Object::<Vm>::open(path("inner")).unwrap();
        object.load().unwrap();
        prepare(&mut object, engine);
        let outer = object.map("outer").unwrap().clone();
        let (a, b) = (
            object.map("inner_a").unwrap().clone(),
            object.map("inner_b").unwrap().clone(),
        );
        assert_eq!(outer.get::<u32, u32>(&1), Ok(b.id()), "{engine:?}");
        assert_eq!(outer.get::<u32, u32>(&2), Ok(a.id()), "{engine:?}");
        assert!(
            outer.get::<u32, u32>(&0).is_err(),
            "entry 0 was not declared"
        );
        a.set(&0u32, &11u64, 0).unwrap();
        b.set(&0u32, &22u64, 0).unwrap();
        let pick = object.program("pick").unwrap();
        let run = |index: u32| {
            let mut mem = index.to_ne_bytes().to_vec();
            pick.run(&mut mem)
        };
        assert_eq!(run(1), Ok(22), "{engine:?}");
        assert_eq!(run(2), Ok(11), "{engine:?}");
        assert_eq!(run(0), Ok(1000), "no inner map at 0, {engine:?}");
        assert_eq!(run(9), Ok(1000), "out of range, {engine:?}");
    }
}
