//! What a Rust crate that depends on `librbpf` builds: the `rbpf` rlib and its normal
//! dependencies only. The C library (cdylib and staticlib) is the separate workspace member
//! `capi/`, and cbindgen is only a dev-dependency (of `tests/header_up_to_date.rs`).

use std::process::Command;

/// Runs cargo with `args` in the repository and returns its standard output.
fn cargo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

#[test]
fn the_library_target_is_an_rlib_and_the_c_library_is_another_package() {
    let metadata = cargo(&[
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--offline",
    ]);
    assert!(
        metadata.contains(r#""kind":["lib"],"crate_types":["lib"],"name":"rbpf""#),
        "the librbpf package's library must be a plain Rust library: {metadata}"
    );
    assert!(
        metadata.contains(
            r#""kind":["cdylib","staticlib"],"crate_types":["cdylib","staticlib"],"name":"rbpf""#
        ),
        "the C library must come from the capi package: {metadata}"
    );
}

#[test]
fn dependents_build_no_cbindgen_and_no_c_api() {
    // What `[dependencies] librbpf = …` compiles: normal and build dependencies, default
    // features. The C API (`librbpf-capi-impl`) and the C library (`librbpf-capi`) are other
    // packages, which depend on this one, never the other way round.
    let tree = cargo(&[
        "tree",
        "--offline",
        "-p",
        "librbpf",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "-f",
        "{p} {f}",
    ]);
    let first = tree.lines().next().unwrap_or_default();
    assert!(first.starts_with("librbpf "), "{tree}");
    // `{p} {f}`: the package (whose path may contain anything) and its comma-separated features.
    let features = first.rsplit(' ').next().unwrap_or_default();
    assert!(
        !features.split(',').any(|feature| feature.contains("capi")),
        "the root crate has a C API feature again: {first}"
    );
    for banned in ["cbindgen", "librbpf-capi-impl", "librbpf-capi"] {
        assert!(
            !tree.lines().any(|line| line.starts_with(banned)),
            "a dependent would build {banned}:\n{tree}"
        );
    }
}
