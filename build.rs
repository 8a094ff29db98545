//! Build script (SKELETON: the C API work adds cbindgen).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librbpf.so.0");
}
