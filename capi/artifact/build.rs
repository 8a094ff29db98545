//! Build script of the C library: sets the SONAME, `librbpf.so.0` (on Linux; the ABI version,
//! kept in step with `SOVERSION` in the Makefile), and creates the
//! `target/<profile>/librbpf.so.0 -> librbpf.so` link. No version script is needed: rustc
//! exports only the `#[no_mangle]` C API from the cdylib, and `tests/capi.rs` checks that
//! with `nm -D`.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `-soname` is a GNU/ELF linker flag: other platforms name the library differently.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librbpf.so.0");
        let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
        link_soname(&out);
    }
}

/// Creates `target/<profile>/librbpf.so.0 -> librbpf.so`, the name programs linked with
/// `-lrbpf` look for at run time (the SONAME), so that `-Ltarget/<profile> -lrbpf` plus an
/// rpath works straight after `cargo build`. Best effort: the link dangles until the library
/// is linked, and a failure here only means embedders make the link themselves.
fn link_soname(out: &Path) {
    // OUT_DIR is target/<profile>/build/<package>-<hash>/out.
    let Some(profile_dir) = out.ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join("librbpf.so.0");
    if std::fs::read_link(&link).is_ok_and(|target| target == Path::new("librbpf.so")) {
        return;
    }
    #[cfg(unix)]
    {
        let temporary = out.join("librbpf.so.0");
        let _ = std::fs::remove_file(&temporary);
        if std::os::unix::fs::symlink("librbpf.so", &temporary).is_ok() {
            let _ = std::fs::rename(&temporary, &link);
        }
    }
}
