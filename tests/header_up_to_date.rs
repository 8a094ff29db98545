//! The checked-in headers must equal what `build.rs` generates from `src/capi/` with the
//! pinned cbindgen, so that the C API and its declarations can never drift apart.
//!
//! After changing the C API, refresh them with
//! `RBPF_BLESS=1 cargo test --test header_up_to_date` and commit `include/`.

use std::path::Path;

/// Compares `include/<name>` with `$OUT_DIR/<name>`, or overwrites the former with
/// `RBPF_BLESS=1`.
fn check(name: &str) {
    let generated_path = Path::new(env!("OUT_DIR")).join(name);
    let checked_in_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("include")
        .join(name);
    let generated = std::fs::read_to_string(&generated_path).unwrap_or_else(|e| {
        panic!(
            "build.rs did not generate {} ({e}); is there a syntax error in src/capi?",
            generated_path.display()
        )
    });
    if std::env::var_os("RBPF_BLESS").is_some() {
        std::fs::write(&checked_in_path, &generated).expect("write the checked-in header");
        return;
    }
    let checked_in = std::fs::read_to_string(&checked_in_path).unwrap_or_default();
    if checked_in != generated {
        let first_difference = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one file is a prefix of the other".to_owned(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "include/{name} is out of date with src/capi ({first_difference}).\n\
             Regenerate it with: RBPF_BLESS=1 cargo test --test header_up_to_date"
        );
    }
}

#[test]
fn ubpf_h_is_up_to_date() {
    check("ubpf.h");
}

#[test]
fn rbpf_h_is_up_to_date() {
    check("rbpf.h");
}
