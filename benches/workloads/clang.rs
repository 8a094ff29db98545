//! The clang-built workloads: C programs from `benches/c/`, compiled for BPF by clang (the
//! checked-in `<stem>.o`) and natively by the system compiler from the same source, so the
//! BPF code has the shapes a C compiler gives it (pointer-increment loops, loops entered at the
//! bottom, switches lowered to compare trees).
//!
//! When clang is installed, every object is rebuilt into a temporary folder at start-up with
//! [`CLANG_FLAGS`] and compared with the checked-in one; a difference is reported (clang
//! versions need not agree byte for byte) and the checked-in object is what runs, so numbers
//! stay comparable across machines. `make -C benches/c` rewrites the checked-in objects.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::programs::{Code, Workload, le_u32, le_u64};
use crate::rng::Rng;

/// The flags of the checked-in objects (also in `benches/c/Makefile`). `-fno-builtin` keeps
/// clang from turning the byte-copy loop into a `memcpy` call, which BPF cannot make.
pub const CLANG_FLAGS: &[&str] = &[
    "-O2",
    "-target",
    "bpf",
    "-fno-builtin",
    "-g0",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-c",
];

/// Every C file of `benches/c/` (also compiled natively into the bench's shared object).
pub const SOURCES: &[&str] = &[
    "empty",
    "add",
    "memcpy",
    "strcmp",
    "log2",
    "log2_bits",
    "primes",
    "switch",
    "switch_value",
];

/// How large the inputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The sizes the issue measures (1 MiB copies and strings).
    Full,
    /// Small inputs for the smoke run (`cargo test --bench workloads`, unoptimised build).
    Quick,
}

/// `benches/c/` in the source tree.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/c")
}

/// Reads the checked-in object `benches/c/<stem>.o`.
pub fn object(stem: &str) -> Result<Vec<u8>, String> {
    let path = source_dir().join(format!("{stem}.o"));
    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Rebuilds every object with clang (when installed) and says whether each matches the
/// checked-in one. Returns one line for the report.
pub fn rebuild_and_compare() -> String {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let dir = std::env::temp_dir().join(format!("rbpf-bench-clang-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return "clang objects: not rebuilt (no temporary folder)".to_owned();
    }
    let mut differing = Vec::new();
    let mut outcome = Ok(());
    for stem in SOURCES {
        let fresh = dir.join(format!("{stem}.o"));
        let status = Command::new(&clang)
            .args(CLANG_FLAGS)
            .arg(source_dir().join(format!("{stem}.c")))
            .arg("-o")
            .arg(&fresh)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                outcome = Err(format!("{clang} failed on {stem}.c ({s})"));
                break;
            }
            Err(_) => {
                outcome = Err(format!("{clang} not found"));
                break;
            }
        }
        if std::fs::read(&fresh).ok() != object(stem).ok() {
            differing.push(*stem);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Err(why) => format!("clang objects: checked-in ones used, not rebuilt ({why})"),
        Ok(()) if differing.is_empty() => {
            "clang objects: rebuilt with this clang, identical to the checked-in ones".to_owned()
        }
        Ok(()) => format!(
            "clang objects: this clang builds {} differently; the checked-in objects ran \
             (`make -C benches/c` updates them)",
            differing.join(", ")
        ),
    }
}

fn workload(
    name: &'static str,
    stem: &'static str,
    description: String,
    mem: Vec<u8>,
    reference: fn(&mut [u8]) -> u64,
) -> Workload {
    Workload {
        name,
        native_symbol: format!("bench_c_{stem}"),
        description,
        code: Code::Clang(stem),
        mem,
        reference,
    }
}

/// The clang-built workloads, in table order.
pub fn all(scale: Scale) -> Vec<Workload> {
    let full = scale == Scale::Full;
    let string_bytes = if full { 1 << 20 } else { 4096 };
    vec![
        workload(
            "c_empty",
            "empty",
            "`return 0` (call overhead only)".into(),
            Vec::new(),
            |_| 0,
        ),
        workload(
            "c_add",
            "add",
            "a + b, two u32 from memory".into(),
            [0xdead_beef_u32.to_le_bytes(), 0x8765_4321_u32.to_le_bytes()].concat(),
            |mem| u64::from(le_u32(mem, 0)) + u64::from(le_u32(mem, 4)),
        ),
        memcpy(string_bytes),
        strcmp("c_strcmp_eq", string_bytes, None),
        strcmp(
            "c_strcmp_late",
            string_bytes,
            Some(string_bytes - string_bytes / 64),
        ),
        log2(if full { 4096 } else { 64 }),
        log2_bits(if full { 4096 } else { 64 }),
        workload(
            "c_primes",
            "primes",
            format!(
                "primes below {} by trial division (u32)",
                if full { 10_000 } else { 300 }
            ),
            (if full { 10_000u32 } else { 300 }).to_le_bytes().to_vec(),
            |mem| {
                let limit = le_u32(mem, 0);
                (2..limit)
                    .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
                    .count() as u64
            },
        ),
        switch(if full { 16384 } else { 256 }),
        switch_value(if full { 16384 } else { 256 }),
    ]
}

fn memcpy(bytes: usize) -> Workload {
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    let mut mem = vec![0u8; bytes * 2];
    for byte in &mut mem[..bytes] {
        *byte = rng.next() as u8;
    }
    workload(
        "c_memcpy",
        "memcpy",
        format!("byte-copy loop over {} KiB", bytes / 1024),
        mem,
        |mem| {
            let half = mem.len() / 2;
            let (src, dst) = mem.split_at_mut(half);
            dst[..half].copy_from_slice(&src[..half]);
            src.last().map_or(0, |&b| u64::from(b))
        },
    )
}

/// Two strings of `chars` characters (plus NUL), equal or differing first at `differ_at`.
fn strcmp(name: &'static str, chars: usize, differ_at: Option<usize>) -> Workload {
    let mut rng = Rng(0x5eed_5eed_0000_0001);
    let half = chars + 1;
    let mut mem = vec![0u8; half * 2];
    for i in 0..chars {
        let c = b'!' + (rng.next() % 94) as u8;
        mem[i] = c;
        mem[half + i] = c;
    }
    let description = match differ_at {
        None => format!("strcmp of two equal {} KiB strings", chars / 1024),
        Some(at) => {
            mem[half + at] = if mem[at] == b'~' { b'!' } else { mem[at] + 1 };
            format!(
                "strcmp of two {} KiB strings differing at byte {at}",
                chars / 1024
            )
        }
    };
    workload(name, "strcmp", description, mem, |mem| {
        let (a, b) = mem.split_at(mem.len() / 2);
        let mut i = 0;
        while a[i] != 0 && a[i] == b[i] {
            i += 1;
        }
        let diff = i32::from(a[i]) - i32::from(b[i]);
        (u64::from(diff as u32) << 32) | i as u64
    })
}

fn log2(values: usize) -> Workload {
    let mut rng = Rng(0x0102_0304_0506_0708);
    let mut mem = Vec::with_capacity(values * 8);
    for _ in 0..values {
        let shift = rng.next() % 64;
        mem.extend_from_slice(&(rng.next() >> shift).to_le_bytes());
    }
    workload(
        "c_log2",
        "log2",
        format!("sum of floor(log2 x) by a shift loop over {values} u64"),
        mem,
        |mem| {
            mem.chunks_exact(8)
                .map(|c| {
                    let x = le_u64(c, 0);
                    u64::from(63 - (x | 1).leading_zeros())
                })
                .sum()
        },
    )
}

/// Values of random magnitude: both 32-bit halves and every halving step of
/// `benches/c/log2_bits.c` go either way at random.
fn log2_bits(values: usize) -> Workload {
    let mut rng = Rng(0x1092_b175_0000_0003);
    let mut mem = Vec::with_capacity(values * 8);
    for _ in 0..values {
        let shift = rng.next() % 64;
        mem.extend_from_slice(&(rng.next() >> shift).to_le_bytes());
    }
    workload(
        "c_log2_bits",
        "log2_bits",
        format!("xor of floor(log2 x) by branch-free halving over {values} u64"),
        mem,
        |mem| {
            mem.chunks_exact(8)
                .map(|c| u64::from(63 - (le_u64(c, 0) | 1).leading_zeros()))
                .fold(0, |acc, bits| acc ^ bits)
        },
    )
}

/// One case of `bench_c_switch` (benches/c/switch.c), applied to the accumulator at index `i`.
fn switch_case(value: u32, acc: u64, i: u64) -> u64 {
    match value {
        0 => acc.wrapping_add(0x1f3),
        1 => acc ^ 0x5a5a5a,
        2 => acc.wrapping_mul(0x1e3779b1),
        3 => acc - (acc >> 3),
        4 => acc.rotate_left(5),
        5 => acc.wrapping_add(0x7777),
        6 => acc ^ 0x13579b,
        7 => acc.wrapping_mul(0x2545f491),
        8 => acc - (acc >> 7),
        9 => acc.rotate_left(11),
        10 => acc.wrapping_add(i),
        11 => acc ^ (i << 3),
        12 => acc.wrapping_mul(0x61c88647),
        13 => acc - (acc >> 11),
        14 => acc.rotate_left(17),
        15 => acc.wrapping_add(0x31),
        16 => acc ^ 0x7fffffff,
        17 => acc.wrapping_mul(0x5851f42d),
        18 => acc - (acc >> 13),
        19 => acc.rotate_left(23),
        20 => acc.wrapping_add(acc >> 5),
        21 => acc ^ (acc >> 9),
        22 => acc.wrapping_mul(0x27d4eb2f),
        23 => acc - (acc >> 17),
        24 => acc.rotate_left(29),
        25 => acc.wrapping_add(5),
        26 => acc ^ 1,
        27 => acc.wrapping_mul(0x165667b1),
        28 => acc - (acc >> 19),
        29 => acc.rotate_left(31),
        30 => !acc,
        31 => (acc >> 1).wrapping_add(i),
        _ => acc.wrapping_add(1),
    }
}

fn switch(values: usize) -> Workload {
    let mut rng = Rng(0x5717_c4ed_0000_0002);
    // Mostly the 32 cases, sometimes the default.
    let mem: Vec<u8> = (0..values)
        .flat_map(|_| ((rng.next() % 36) as u32).to_le_bytes())
        .collect();
    workload(
        "c_switch",
        "switch",
        format!("dense 32-case switch over {values} u32"),
        mem,
        |mem| {
            mem.chunks_exact(4)
                .enumerate()
                .fold(0x12345, |acc, (i, c)| {
                    switch_case(le_u32(c, 0), acc, i as u64)
                })
        },
    )
}

/// The values of `bench_c_switch_value`'s cases 0..=63 (benches/c/switch_value.c).
const SWITCH_VALUES: [i32; 64] = [
    339564, 993909, 158177, 414003, 682555, 50632, 75955, 861169, 561914, 98703, 383453, 611098,
    60817, 953894, 532085, 225128, 39318, 90123, 454711, 438486, 73249, 252354, 95120, 577815,
    445141, 61982, 867018, 592922, 129816, 993474, 234084, 661260, 657912, 611317, 993745, 64868,
    605137, 613985, 415950, 51999, 1023678, 231822, 48846, 583706, 900170, 139644, 303678, 439500,
    151263, 566951, 123515, 598647, 323467, 587473, 855771, 715132, 189506, 108062, 609852, 598952,
    669950, 196998, 390488, 102164,
];

/// The value `bench_c_switch_value` picks for key `k` (its default for keys outside 0..=63).
fn switch_value_of(k: i32) -> i32 {
    usize::try_from(k)
        .ok()
        .and_then(|k| SWITCH_VALUES.get(k).copied())
        .unwrap_or(987_654)
}

fn switch_value(values: usize) -> Workload {
    let mut rng = Rng(0x5717_c4ed_0000_0064);
    // The count, then keys: mostly the 64 cases, sometimes negative or above them.
    let mut mem = (values as u32).to_le_bytes().to_vec();
    for _ in 0..values {
        let key = (rng.next() % 72) as i32 - 4;
        mem.extend_from_slice(&key.to_le_bytes());
    }
    workload(
        "c_switch_value",
        "switch_value",
        format!("64-case switch picking a value, over {values} signed ints"),
        mem,
        |mem| {
            let count = le_u32(mem, 0) as i32;
            (1..=count.max(0) as usize).fold(0u64, |hash, i| {
                hash ^ switch_value_of(le_u32(mem, 4 * i) as i32) as i64 as u64
            })
        },
    )
}
