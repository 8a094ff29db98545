//! Seed corpora, written by the fuzzer binary itself when `RBPF_FUZZ_WRITE_SEEDS` names a
//! directory (`run.sh` does this before each run), so the seeds always match the input
//! formats of this build.
//!
//! Sources: the conformance suite's `.data` files (`$RBPF_CONFORMANCE_DIR/tests`; by default
//! the copy vendored as `tests/bpf-conformance` when the repository has one, else
//! `../shared/bpf-conformance` beside the repository), parsed with the crate's `data_file`
//! module, and the example objects (`$RBPF_EXAMPLES_DIR`, default `examples-c/bpf`).

use std::path::{Path, PathBuf};

use rbpf::data_file::DataFile;

/// The repository root (this crate lives in `fuzz/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dir_from_env(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map_or(default, PathBuf::from)
}

/// One program of the conformance suite.
struct SuiteProgram {
    name: String,
    mem: Vec<u8>,
    code: Vec<u8>,
    /// The assembly text, when the file has one.
    asm: Option<String>,
}

/// Every parsable conformance program.
fn conformance() -> Vec<SuiteProgram> {
    let vendored = repo().join("tests/bpf-conformance");
    let default = if vendored.join("tests").is_dir() {
        vendored
    } else {
        repo().join("../shared/bpf-conformance")
    };
    let root = dir_from_env("RBPF_CONFORMANCE_DIR", default);
    let Ok(entries) = std::fs::read_dir(root.join("tests")) else {
        eprintln!(
            "rbpf-fuzz: no conformance suite at {} (set RBPF_CONFORMANCE_DIR); fewer seeds",
            root.display()
        );
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let file = DataFile::read(&path).ok()?;
            let insns = file.program().ok()?;
            let name = path.file_stem()?.to_string_lossy().into_owned();
            Some(SuiteProgram {
                name,
                mem: file.mem_bytes(),
                code: rbpf::isa::encode_slots(&insns),
                asm: file.asm.clone(),
            })
        })
        .collect()
}

/// The setups the bytecode seeds cycle through (the `diff` target's flag byte; bit 2, the
/// unwind helper, is on as in the suite).
const FLAG_CYCLE: [u8; 10] = [0x04, 0x05, 0x06, 0x0c, 0x14, 0x25, 0x44, 0x3f, 0x84, 0x8d];

/// Programs with legacy packet loads (`ldabs*`/`ldind*`) for the bytecode seeds.
const PACKET_LOAD_SEEDS: [&str; 4] = [
    "ldabsb 3\nmov %r6, %r0\nldabsh 30\nadd %r0, %r6\nldabsw 29\nexit",
    "mov %r2, 8\nldindw %r2, 4\nmov %r3, %r0\nldinddw %r2, 16\nxor %r0, %r3\nexit",
    "mov %r4, 0\nloop:\nldindb %r4, 0\nadd %r4, 1\njlt %r4, 40, loop\nexit",
    "mov32 %r5, -1\nldindh %r5, 3\nstxdw [%r10-8], %r0\nldabsdw -1\nexit",
];

/// Adds every `*.o` of `dir` to `seeds`, named with `prefix`.
fn objects(dir: &Path, prefix: &str, seeds: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "o") {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            seeds.push((format!("{prefix}{name}"), std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// Writes `target`'s seeds into `dir`; returns how many.
pub fn write(target: &str, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    match target {
        "diff" | "safe" => {
            for (i, p) in conformance().into_iter().enumerate() {
                let mem = &p.mem[..p.mem.len().min(255)];
                let mut seed = vec![FLAG_CYCLE[i % FLAG_CYCLE.len()], 0, mem.len() as u8];
                seed.extend_from_slice(mem);
                seed.extend_from_slice(&p.code);
                seeds.push((p.name, seed));
            }
            // The suite has no legacy packet loads: a few programs with them, in and out of
            // a 32-byte packet, so that mutations start from valid ones.
            for (i, text) in PACKET_LOAD_SEEDS.iter().enumerate() {
                let insns = rbpf::asm::assemble(text).expect("seed program assembles");
                let mut seed = vec![FLAG_CYCLE[i % FLAG_CYCLE.len()], 0, 32];
                seed.extend((0..32u8).map(|b| b.wrapping_mul(37)));
                seed.extend_from_slice(&rbpf::isa::encode_slots(&insns));
                seeds.push((format!("packet-load-{i}"), seed));
            }
        }
        "asm" => {
            for p in conformance() {
                if let Some(text) = p.asm {
                    seeds.push((format!("{}.s", p.name), text.into_bytes()));
                }
                seeds.push((format!("{}.bin", p.name), p.code));
            }
        }
        "elf" => {
            let dir = dir_from_env("RBPF_EXAMPLES_DIR", repo().join("examples-c/bpf"));
            objects(&dir, "", &mut seeds)?;
        }
        "object" => {
            let dir = dir_from_env("RBPF_EXAMPLES_DIR", repo().join("examples-c/bpf"));
            objects(&dir, "examples-", &mut seeds)?;
            objects(&repo().join("tests/bpf/object"), "object-", &mut seeds)?;
            objects(&repo().join("tests/kernel_corpus"), "corpus-", &mut seeds)?;
        }
        "ctx" => {
            // Recipes: every program type under every `ctx_in` mode, with pseudo-random ops
            // of a few lengths, plus the shape of a real parser (bounds-checked packet reads
            // next to field loads and stores through copies and spills of r1).
            let mut x = 0x2545_f491_4f6c_dd1du64;
            for i in 0..64usize {
                let head = (i % 4) as u8 | ((i / 4 % 2) as u8) << 2 | ((i / 8 % 4) as u8) << 3;
                let mut seed = vec![head, (i * 7) as u8];
                for _ in 0..(6 + i * 3) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    seed.push(x as u8);
                }
                seeds.push((format!("recipe-{i}"), seed));
            }
            for ty in 0..4u8 {
                // XDP: mode 1 (a valid ctx_in); skb types: mode 2 (fields from the input).
                let mut seed = if ty == 0 {
                    vec![ty | 0x08, 50]
                } else {
                    let mut s = vec![ty | 0x10, 50];
                    s.extend((1..=16u8).map(|b| b.wrapping_mul(11)));
                    s
                };
                let (field, other) = if ty == 0 { (12, 16) } else { (8, 48) };
                // r6 = r1; spill r6; 4 packet bytes at 12 (checked 16); fill r7; two 4-byte
                // field loads through r6 and r1; a 2-byte packet write at 0 (checked 8).
                seed.extend_from_slice(&[3, 0, 0, 4, 3, 0, 6, 2, 12, 16, 4, 4, 0]);
                seed.extend_from_slice(&[0, 0x82, field, 0, 0x80, other]);
                if ty != 0 {
                    // Store r0 into cb[1] through r1.
                    seed.extend_from_slice(&[2, 0x81, 52, 1]);
                }
                seed.extend_from_slice(&[6, 0x21, 0, 8]);
                seeds.push((format!("parser-{ty}"), seed));
            }
        }
        _ => {}
    }
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(seeds.len())
}
