//! The `rbpf` command-line tool (SKELETON).
fn main() {}
