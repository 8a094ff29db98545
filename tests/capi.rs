//! The C API as C programs see it: every `capi-tests/*.c` file (and every `examples-c/*.c`
//! example) is compiled with the system C compiler (`-Wall -Wextra -Werror -std=c11
//! -Iinclude`), linked against the real `librbpf.so` that cargo just built with an rpath, and run;
//! it must exit with status 0. One Rust test per file. Each program also runs under
//! `valgrind --leak-check=full --error-exitcode=1` when valgrind is installed, and the C tests
//! run once more built with `-fsanitize=address,undefined` when the compiler supports it.
//!
//! Also here: the headers compile as C++, and the shared library exports only the C API.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::c::{check_output, compile, compile_with, compiler, paths, run};

/// The sanitizers of the extra C-side run.
const SANITIZE: &[&str] = &["-fsanitize=address,undefined", "-fno-sanitize-recover=all"];

/// Whether the C compiler can build and link sanitized programs (checked once).
fn sanitizers_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let dir = &paths().bin_dir;
        let source = dir.join("sanitizer_probe.c");
        let output = dir.join("sanitizer_probe");
        if std::fs::write(&source, "int main(void) { return 0; }\n").is_err() {
            return false;
        }
        compiler(false)
            .args(SANITIZE)
            .arg(&source)
            .arg("-o")
            .arg(&output)
            .output()
            .is_ok_and(|o| o.status.success())
            && Command::new(&output)
                .output()
                .is_ok_and(|o| o.status.success())
    })
}

/// Compiles `source` with AddressSanitizer and UBSan on the C side and runs it, after
/// checking with `nm` that the ASan runtime really is in the program.
fn run_sanitized(source: &Path, args: &[&str]) {
    if !sanitizers_available() {
        common::skip(
            "a C compiler with the ASan/UBSan runtimes",
            &format!("{} ran without ASan/UBSan", source.display()),
        );
        return;
    }
    let program = compile_with(source, false, SANITIZE, "-asan");
    if let Ok(symbols) = Command::new("nm").arg(&program).output() {
        assert!(
            String::from_utf8_lossy(&symbols.stdout).contains("__asan_init"),
            "{} was not linked with AddressSanitizer",
            program.display()
        );
    }
    let mut command = Command::new(&program);
    command.args(args).current_dir(&paths().root);
    let output = command.output().expect("run the sanitized test program");
    check_output("running with ASan/UBSan", &command, &output);
}

/// Compiles and runs `capi-tests/<name>.c` (plain, under valgrind, and sanitized).
fn c_test(name: &str) {
    let source = paths().root.join("capi-tests").join(format!("{name}.c"));
    let program = compile(&source, false);
    run(&program, &[]);
    run_sanitized(&source, &[]);
}

/// Declares one Rust test per C test file, and the list `every_c_test_file_is_run` checks.
macro_rules! c_tests {
    ($($name:ident),* $(,)?) => {
        /// Every C file in `capi-tests/` (each has a Rust test of the same name).
        const C_TESTS: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                c_test(stringify!($name));
            }
        )*
    };
}

c_tests!(
    debug_fn,
    ebpf_h,
    elf,
    elf_entry,
    elf_errors,
    helpers,
    jit,
    jit_large,
    jit_runtime,
    kernel_corpus,
    kernel_maps,
    lifecycle,
    load_errors,
    maps,
    mbuff,
    memory,
    null_args,
    object,
    packet_loads,
    rbpf_ext,
    runtime_errors,
    safe_profile,
    sandbox,
    settings,
    signatures,
    stack_usage,
    test_run,
    threads,
);

#[test]
fn every_c_test_file_is_run() {
    let dir = paths().root.join("capi-tests");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("list capi-tests")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    found.sort();
    let mut listed: Vec<String> = C_TESTS.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "capi-tests/*.c and C_TESTS in tests/capi.rs differ"
    );
}

/// Each example in `examples-c/`: its arguments (paths relative to the repository root) and
/// texts its standard output must contain.
const EXAMPLES: &[(&str, &[&str], &[&str])] = &[
    (
        "hello",
        &[],
        &[
            "IPv4 header checksum (interpreter): 0xb861",
            "IPv4 header checksum (JIT):         0xb861",
        ],
    ),
    (
        "pcap_filter",
        &[
            "examples-c/bpf/packet_filter.o",
            "examples-c/data/sample.pcap",
        ],
        &["400 packets, 125 matched"],
    ),
    (
        "flow_top",
        &[],
        &[
            "400 packets (jit), 308 IPv4 sources",
            "protocols: icmp 18 tcp 231 udp 59",
            "6 SYN events (6 consumed, 6 SYN packets)",
        ],
    ),
];

/// Compiles and runs `examples-c/<name>.c`, checking its output.
fn example(name: &str) {
    let (_, args, expected) = EXAMPLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .expect("example listed in EXAMPLES");
    let source = paths().root.join("examples-c").join(format!("{name}.c"));
    let program = compile(&source, false);
    let output = run(&program, args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for text in *expected {
        assert!(
            stdout.contains(text),
            "examples-c/{name}.c printed:\n{stdout}\nexpected it to contain {text:?}"
        );
    }
}

#[test]
fn every_example_is_run() {
    let dir = paths().root.join("examples-c");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("list examples-c")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        // The conformance plugin needs the runner's input; tests/plugin.rs runs it.
        .filter(|stem| stem != "bpf_conformance_plugin")
        .collect();
    found.sort();
    let mut listed: Vec<String> = EXAMPLES.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "examples-c/*.c and EXAMPLES in tests/capi.rs differ"
    );
}

#[test]
fn example_hello() {
    example("hello");
}

#[test]
fn example_pcap_filter() {
    example("pcap_filter");
}

/// flow_top over the bundled capture, then (in the same test: both compile the same program
/// to the same path) over the capture with busy hosts in both engines.
#[test]
fn example_flow_top() {
    example("flow_top");
    flow_top_engines_agree();
}

/// The map benchmark's smoke run: one pass per engine, results checked against native C.
#[test]
fn maps_bench_agrees_with_native() {
    let source = paths().root.join("benches").join("maps_bench.c");
    let program = compile(&source, false);
    let output = run(&program, &["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("results agree: 1024 sources, 65536 packets"),
        "{stdout}"
    );
}

/// flow_top over the capture with busy hosts and TCP connections: both engines find the same
/// top talkers and SYN events.
fn flow_top_engines_agree() {
    let source = paths().root.join("examples-c").join("flow_top.c");
    let program = compile(&source, false);
    let mut outputs = Vec::new();
    for engine in [&[][..], &["--interpret"][..]] {
        let mut args = engine.to_vec();
        args.extend([
            "examples-c/bpf/flow_counter.o",
            "examples-c/data/flows.pcap",
        ]);
        let output = run(&program, &args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        for text in [
            "  10.0.0.1           124 packets     58704 bytes",
            "protocols: icmp 12 tcp 241 udp 47",
            "  SYN 10.0.1.7:47600 -> 192.168.0.1:80",
            "44 SYN events (44 consumed, 44 SYN packets)",
        ] {
            assert!(
                stdout.contains(text),
                "flow_top printed:\n{stdout}\nexpected {text:?}"
            );
        }
        outputs.push(stdout.replace("(interpreter)", "(jit)"));
    }
    assert_eq!(outputs[0], outputs[1]);
}

/// The headers compile as C++ with warnings as errors, and the functions link with C linkage.
#[test]
fn headers_compile_as_cxx() {
    let probe = compiler(true).arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        common::skip("a C++ compiler", "the C++ header check did not run");
        return;
    }
    let source = paths().root.join("capi-tests").join("header_cxx.cpp");
    let program = compile(&source, true);
    run(&program, &[]);
}

/// `librbpf.so` exports only the C API: `ubpf_*`, `rbpf_*` and `as_external_function_t`.
#[test]
fn exports_only_the_c_api() {
    let library = paths().lib_dir.join("librbpf.so");
    let output = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&library)
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        _ => {
            common::skip("nm", "symbol hygiene was not checked");
            return;
        }
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .collect();
    let foreign: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            !(name.starts_with("ubpf_")
                || name.starts_with("rbpf_")
                || *name == "as_external_function_t")
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "librbpf.so exports symbols outside the C API: {foreign:?}"
    );
    for required in [
        "ubpf_create",
        "ubpf_load",
        "ubpf_exec",
        "ubpf_compile",
        "ubpf_set_register_offset",
        "as_external_function_t",
        "rbpf_version",
    ] {
        assert!(names.contains(&required), "{required} is not exported");
    }
}

/// The library's SONAME is `librbpf.so.0`, as a packaged C library's would be.
#[test]
fn soname_is_set() {
    let library = paths().lib_dir.join("librbpf.so");
    let Ok(output) = Command::new("readelf").arg("-d").arg(&library).output() else {
        common::skip("readelf", "the SONAME was not checked");
        return;
    };
    let dynamic = String::from_utf8_lossy(&output.stdout);
    assert!(
        dynamic.contains("Library soname: [librbpf.so.0]"),
        "unexpected dynamic section:\n{dynamic}"
    );
}
