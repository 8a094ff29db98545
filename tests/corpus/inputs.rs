//! Inputs of the variant corpus (`tests/corpus/src/*.c`), shared by the differential tests
//! (`tests/corpus.rs`) and the workloads benchmark (`benches/workloads/corpus.rs`), which both
//! include this file with `#[path]`. The includer must have the fixed-seed generator of
//! `tests/common/rng.rs` in scope at its crate root as `rng`.
//!
//! Every corpus program reads a header of four u64 words, N, A, B and C, and then its data
//! (`tests/corpus/corpus.h`). What they mean depends on the program, so inputs are chosen by
//! the source's name and by the idioms its first line declares (`IDIOM: copy`), never by a
//! list of the current sources: a new source gets the inputs of the rule its name (or idiom)
//! matches, and the generic ones otherwise.
//!
//! - [`differential_inputs`]: small inputs for every source alike, some in bounds, some that
//!   run off the end of memory mid-loop (the differential tests want both);
//! - [`bench_candidates`]: large inputs that stay in bounds, sized per kind of program so that
//!   one run takes some tens of microseconds natively, best first; the bench takes the first
//!   candidate on which no variant faults, the differential inputs being the last resort.

use crate::rng::Rng;

/// Bytes of the header (N, A, B, C) before the data.
pub const HEADER_LEN: usize = 32;
/// Bytes of each differential input: the header and the data.
pub const MEM_LEN: usize = 512;

/// Writes the header words N, A, B and C at the start of `mem`.
pub fn write_header(mem: &mut [u8], words: [u64; 4]) {
    for (i, w) in words.iter().enumerate() {
        mem[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
}

/// The idioms a source declares on its first line (`/* IDIOM: copy. ... */`), given the
/// source's text.
pub fn declared_idioms(source: &str) -> Vec<String> {
    let first = source.lines().next().unwrap_or("");
    match first.split_once("IDIOM:") {
        Some((_, rest)) => rest
            .split(['.', ','])
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    }
}

/// The inputs every object runs on in the differential tests: header words (N, A, B, C) and
/// data, [`MEM_LEN`] bytes each.
pub fn differential_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_c0de);
    let headers: [[u64; 4]; 10] = [
        [0, 64, 7, 3],
        [5, 100, 7, 3],
        [37, 200, 0x41, 9],
        [60, 3, 0x1234_5678, 4],
        [100, 240, 0x61, 2],
        [1000, 0, 0x30, 8],
        [50, 0, 0, 5],
        [20, (-8i64) as u64, 0xff, 1],
        [8, 160, 0x7f, 6],
        [4, 1, 0x8000_0000, 7],
    ];
    let mut out = Vec::new();
    for (k, h) in headers.iter().enumerate() {
        let mut mem = vec![0u8; MEM_LEN];
        write_header(&mut mem, *h);
        for b in &mut mem[HEADER_LEN..] {
            // Mostly small values (switch keys, text), some zeros (string ends).
            *b = match rng.below(16) {
                0 => 0,
                1..=8 => b'a' + rng.below(26) as u8,
                _ => rng.next() as u8,
            };
        }
        // Make the ranges at offsets 0 and A of the data agree for a while (compare loops run
        // long), then differ; every third input has no zero byte at all (strings run off).
        let a = h[1] as usize;
        if a > 0 && a < MEM_LEN - HEADER_LEN {
            let same = (k * 37) % (MEM_LEN - HEADER_LEN - a);
            for i in 0..same {
                mem[HEADER_LEN + a + i] = mem[HEADER_LEN + i];
            }
        }
        if k % 3 == 2 {
            for b in &mut mem[HEADER_LEN..] {
                *b |= 1;
            }
        }
        out.push(mem);
    }
    out
}

/// How large bench inputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchScale {
    /// Sized for timing: some tens of microseconds per native run.
    Full,
    /// A few hundred bytes, for the smoke run.
    Small,
}

/// One bench input of a source.
pub struct BenchInput {
    /// Header and data.
    pub mem: Vec<u8>,
    /// What it holds, for the report (the rule that made it and N).
    pub description: String,
    /// Bytes at the start of `mem` a run reorders in a way that changes the next run's work
    /// (sorting in place): every timed run first restores them, in every engine alike. 0 when
    /// runs need no restoring.
    pub restore: usize,
}

/// How a rule lays out the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// N elements of random nonzero bytes at DATA, then a zero element, and the same bytes
    /// (and zero) again at DATA + A: the source and destination of copies, the destination of
    /// fills, two equal arrays or strings for comparisons (which then run to the end), a
    /// terminated string for string loops. B is a byte value the data never holds, so a
    /// search for it runs to the end; C is 4.
    Arrays,
    /// N ascending u64 keys at DATA (odd numbers); B an absent key in the middle.
    Sorted,
    /// N = 31, which the matrix sources mask to their largest size; random data, A (an output
    /// matrix) far behind the inputs.
    Matrix,
    /// A type-length-value option list of N bytes (kinds 2..=255 with lengths 2..=12, nops
    /// to fill up), then a zero.
    Tlv,
    /// An Ethernet + IPv4 + TCP header, N = 64.
    EthIpv4,
    /// `parse_fields`' header (version 2, 63 items) and its u16 items.
    Fields,
    /// An Ethernet header with four stacked VLAN tags, N = 64.
    VlanStack,
}

/// Inputs for the sources a pattern matches.
struct Rule {
    /// A source name (exact), a name prefix ending in `_`, or `idiom:<name>` for sources that
    /// declare that idiom.
    pattern: &'static str,
    layout: Layout,
    /// Bytes per element when the name ends in no `_u8`, `_u16`, `_u32` or `_u64`.
    width: usize,
    /// Bytes of the (first) array at full scale.
    full_bytes: usize,
    /// Whether runs must start from the original data (in-place sorts get faster on sorted
    /// data).
    restore: bool,
}

const fn rule(pattern: &'static str, layout: Layout, full_bytes: usize) -> Rule {
    Rule {
        pattern,
        layout,
        width: 8,
        full_bytes,
        restore: false,
    }
}

/// The rules, most specific first: exact names, then prefixes, then idioms. Unknown element
/// types count as 8 bytes, so N never reaches past the data. The sizes make one native run
/// (gcc 12 -O2 on the project's EPYC VM) take 10–100 µs where the work grows with N: fills
/// get large arrays, since gcc turns byte fills into `memset`; quadratic sorts small ones.
/// Binary searches, header parsers and the matrix sources (whose N is masked) do a fixed,
/// small amount of work and take nanoseconds to a few microseconds.
const RULES: &[Rule] = &[
    rule("parse_tlv", Layout::Tlv, 64 << 10),
    rule("parse_eth_ip", Layout::EthIpv4, 0),
    rule("parse_fields", Layout::Fields, 0),
    rule("parse_vlan_loop", Layout::VlanStack, 0),
    rule("copy_", Layout::Arrays, 256 << 10),
    rule("fill_", Layout::Arrays, 1 << 20),
    rule("memcmp_", Layout::Arrays, 128 << 10),
    rule("strcmp_", Layout::Arrays, 64 << 10),
    // N counts bytes in these (a source whose elements are wider faults on the 1-byte input
    // and gets the 8-byte one).
    Rule {
        width: 1,
        ..rule("strncmp_", Layout::Arrays, 64 << 10)
    },
    Rule {
        width: 1,
        ..rule("str_", Layout::Arrays, 48 << 10)
    },
    Rule {
        width: 1,
        ..rule("hash_", Layout::Arrays, 64 << 10)
    },
    rule("csum_", Layout::Arrays, 64 << 10),
    rule("pop_", Layout::Arrays, 64 << 10),
    rule("switch_", Layout::Arrays, 128 << 10),
    // Counting sort does the same work on sorted data, and is linear: no restoring.
    rule("sort_counting", Layout::Arrays, 256 << 10),
    Rule {
        restore: true,
        ..rule("sort_", Layout::Arrays, 2 << 10)
    },
    rule("bsearch_", Layout::Sorted, 64 << 10),
    rule("mat_", Layout::Matrix, 16 << 10),
    rule("idiom:copy", Layout::Arrays, 256 << 10),
    rule("idiom:fill", Layout::Arrays, 1 << 20),
    rule("idiom:compare", Layout::Arrays, 128 << 10),
    rule("idiom:switch", Layout::Arrays, 128 << 10),
];

/// For a source no rule matches: arrays, small enough for a quadratic loop.
const GENERIC: Rule = rule("generic", Layout::Arrays, 16 << 10);

/// Bytes of the (first) array at small scale.
const SMALL_BYTES: usize = 256;
/// The byte value bench data never holds (B of [`Layout::Arrays`]).
const ABSENT: u8 = 0x80;

fn matches(rule: &Rule, stem: &str, idioms: &[String]) -> bool {
    if let Some(idiom) = rule.pattern.strip_prefix("idiom:") {
        idioms.iter().any(|d| d == idiom)
    } else if rule.pattern.ends_with('_') {
        stem.starts_with(rule.pattern)
    } else {
        stem == rule.pattern
    }
}

/// The element width a name states with its last `_u8`, `_u16`, `_u32` or `_u64` part.
fn named_width(stem: &str) -> Option<usize> {
    stem.rsplit('_').find_map(|part| match part {
        "u8" => Some(1),
        "u16" => Some(2),
        "u32" => Some(4),
        "u64" => Some(8),
        _ => None,
    })
}

/// The bench inputs to try for source `stem` (whose first line declares `idioms`), best
/// first: its rule's input with the element width its name states, the same with 8-byte
/// elements (in case the name misleads), the generic input, then every differential input.
/// The caller takes the first one on which no variant faults.
pub fn bench_candidates(stem: &str, idioms: &[String], scale: BenchScale) -> Vec<BenchInput> {
    let found = RULES.iter().find(|r| matches(r, stem, idioms));
    let rule = found.unwrap_or(&GENERIC);
    let mut widths = vec![named_width(stem).unwrap_or(rule.width)];
    if widths[0] != 8 {
        widths.push(8);
    }
    let mut out: Vec<BenchInput> = widths
        .into_iter()
        .map(|w| make(rule, w, scale, stem))
        .collect();
    if found.is_some() {
        out.push(make(&GENERIC, 8, scale, stem));
    }
    out.extend(
        differential_inputs()
            .into_iter()
            .enumerate()
            .map(|(k, mem)| BenchInput {
                description: format!("differential input {k} (no bench rule fits)"),
                mem,
                restore: 0,
            }),
    );
    out
}

/// A new buffer: the header and `data` bytes of zeros.
fn buffer(header: [u64; 4], data: usize) -> Vec<u8> {
    let mut mem = vec![0u8; HEADER_LEN + data];
    write_header(&mut mem, header);
    mem
}

/// A random byte that is neither 0 nor [`ABSENT`].
fn data_byte(rng: &mut Rng) -> u8 {
    loop {
        let b = rng.next() as u8;
        if b != 0 && b != ABSENT {
            return b;
        }
    }
}

fn make(rule: &Rule, width: usize, scale: BenchScale, stem: &str) -> BenchInput {
    let bytes = match scale {
        BenchScale::Full => rule.full_bytes,
        BenchScale::Small => rule.full_bytes.min(SMALL_BYTES),
    };
    // One generator per source, so each source's input is the same in every run.
    let seed = stem.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let mut rng = Rng(seed);
    // Bytes a restoring run copies back: the header and the first array, which in-place
    // sorts reorder (the whole buffer for layouts with no first array).
    let mut first_array_end = None;
    let (mem, description) = match rule.layout {
        Layout::Arrays => {
            let n = (bytes / width).max(1);
            let used = n * width;
            // At least one zero element after each array, and A a multiple of 8.
            let a = (used + 8).div_ceil(8) * 8;
            let mut mem = buffer([n as u64, a as u64, u64::from(ABSENT), 4], 2 * a);
            first_array_end = Some(HEADER_LEN + a);
            for i in 0..used {
                let b = data_byte(&mut rng);
                mem[HEADER_LEN + i] = b;
                mem[HEADER_LEN + a + i] = b;
            }
            (
                mem,
                format!(
                    "two equal arrays of N = {n} {width}-byte elements, A = {a} (rule `{}`)",
                    rule.pattern
                ),
            )
        }
        Layout::Sorted => {
            let n = (bytes / 8).max(1);
            let mut mem = buffer([n as u64, 0, n as u64, 4], n * 8 + 8);
            for i in 0..n {
                let at = HEADER_LEN + i * 8;
                mem[at..at + 8].copy_from_slice(&(2 * i as u64 + 1).to_le_bytes());
            }
            (
                mem,
                format!(
                    "N = {n} ascending u64 keys, an absent key B (rule `{}`)",
                    rule.pattern
                ),
            )
        }
        Layout::Matrix => {
            let half = bytes.max(SMALL_BYTES * 16) / 2;
            let mut mem = buffer([31, half as u64, u64::from(ABSENT), 4], 2 * half);
            for b in &mut mem[HEADER_LEN..HEADER_LEN + half] {
                *b = data_byte(&mut rng);
            }
            (
                mem,
                format!(
                    "N = 31 (matrices of the largest size), A = {half} (rule `{}`)",
                    rule.pattern
                ),
            )
        }
        Layout::Tlv => {
            let n = bytes.max(16);
            let mut mem = buffer([n as u64, 0, 0, 4], n + 8);
            let mut off = 0;
            while n - off >= 14 {
                let kind = 2 + rng.below(254) as u8;
                let len = 2 + rng.below(11);
                mem[HEADER_LEN + off] = kind;
                mem[HEADER_LEN + off + 1] = len as u8;
                for i in 2..len {
                    mem[HEADER_LEN + off + i] = rng.next() as u8;
                }
                off += len;
            }
            for b in &mut mem[HEADER_LEN + off..HEADER_LEN + n] {
                *b = 1;
            }
            (mem, format!("a TLV option list of N = {n} bytes"))
        }
        Layout::EthIpv4 => {
            let mut mem = buffer([64, 0, 0, 4], 64);
            let packet: [u8; 38] = [
                2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, // Ethernet, IPv4
                0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, // IPv4, TCP
                10, 0, 0, 1, 10, 0, 0, 2, // addresses
                0x30, 0x39, 0x01, 0xbb, // ports 12345 -> 443
            ];
            mem[HEADER_LEN..HEADER_LEN + packet.len()].copy_from_slice(&packet);
            (mem, "an Ethernet + IPv4 + TCP header, N = 64".to_owned())
        }
        Layout::Fields => {
            let count = 63usize;
            let n = 8 + 2 * count;
            let mut mem = buffer([n as u64, 0, 0, 4], n + 8);
            let data = &mut mem[HEADER_LEN..];
            data[0] = 2;
            data[2..4].copy_from_slice(&(count as u16).to_le_bytes());
            data[4..8].copy_from_slice(&0x0bad_cafe_u32.to_le_bytes());
            for i in 0..count {
                let at = 8 + 2 * i;
                data[at..at + 2].copy_from_slice(&(rng.next() as u16).to_le_bytes());
            }
            (
                mem,
                format!("a version-2 header with {count} u16 items, N = {n}"),
            )
        }
        Layout::VlanStack => {
            let mut mem = buffer([64, 0, 0, 4], 64);
            let data = &mut mem[HEADER_LEN..];
            for (tag, tpid) in [0x88a8_u16, 0x8100, 0x8100, 0x8100].iter().enumerate() {
                let at = 12 + 4 * tag;
                data[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
                data[at + 2..at + 4].copy_from_slice(&(100 + tag as u16).to_be_bytes());
            }
            data[28..30].copy_from_slice(&0x0800_u16.to_be_bytes());
            (
                mem,
                "an Ethernet header with four VLAN tags, N = 64".to_owned(),
            )
        }
    };
    let restore = if rule.restore {
        first_array_end.unwrap_or(mem.len())
    } else {
        0
    };
    BenchInput {
        mem,
        description,
        restore,
    }
}
