//! Build script: exposes the target triple to the tests that compile C programs
//! (`RBPF_TARGET`). The C library's SONAME is set by `capi/artifact/build.rs`; the C headers are
//! generated and checked by `tests/header_up_to_date.rs`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(target) = std::env::var("TARGET") {
        println!("cargo:rustc-env=RBPF_TARGET={target}");
    }
}
