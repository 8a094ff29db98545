//! The hand-written workloads: each is a BPF program in conformance assembly syntax, the input
//! memory it runs on, and a Rust reference implementation. The native C twin of each lives in
//! `benches/native.c` under the symbol `bench_<name>`. (The clang-built workloads are in
//! `clang.rs`.)
//!
//! Every program gets the memory buffer in r1 and its length in r2 (the conformance suite's and
//! uBPF's convention) and returns its result in r0. The reference implementations give the
//! expected result (and the expected final memory) independently of all three engines.

use std::fmt::Write as _;

use crate::rng::Rng;

/// Where a workload's BPF program comes from.
pub enum Code {
    /// Conformance assembly, written by hand in this file.
    Asm(String),
    /// A clang-built object from `benches/c/` (its file stem), loaded with `Vm::load_elf`.
    Clang(&'static str),
}

/// One benchmark workload.
pub struct Workload {
    /// Short name: the table label.
    pub name: &'static str,
    /// The native twin's symbol (`bench_<name>` for hand-written workloads).
    pub native_symbol: String,
    /// One line describing what runs.
    pub description: String,
    /// The BPF program.
    pub code: Code,
    /// The input memory; each engine runs on its own copy.
    pub mem: Vec<u8>,
    /// Computes the expected result, updating `mem` as the program does.
    pub reference: fn(&mut [u8]) -> u64,
}

/// Number of u64 inputs of the log2 workload.
const LOG2_INPUTS: usize = 512;
/// The primes workload counts primes below this.
const PRIMES_LIMIT: u64 = 10_000;
/// Bytes copied by the memcpy workload (the buffer is twice as large).
const MEMCPY_BYTES: usize = 4096;
/// Length of each string of the strcmp workload, without its NUL.
const STRCMP_CHARS: usize = 4095;
/// Bytes the switch workload dispatches on.
const SWITCH_BYTES: usize = 4096;

/// The hand-written workloads, in table order.
pub fn hand_written() -> Vec<Workload> {
    vec![
        empty(),
        add(),
        log2(),
        primes(),
        memcpy(),
        strcmp(),
        switch(),
    ]
}

fn empty() -> Workload {
    Workload {
        name: "empty",
        native_symbol: "bench_empty".into(),
        description: "return 0 (call overhead only)".into(),
        code: Code::Asm("mov %r0, 0\nexit\n".into()),
        mem: Vec::new(),
        reference: |_| 0,
    }
}

fn add() -> Workload {
    let mut mem = Vec::new();
    mem.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    mem.extend_from_slice(&0x8765_4321_u32.to_le_bytes());
    Workload {
        name: "add",
        native_symbol: "bench_add".into(),
        description: "add two u32 read from memory".into(),
        code: Code::Asm(
            "\
ldxw %r0, [%r1+0]
ldxw %r2, [%r1+4]
add %r0, %r2
exit
"
            .into(),
        ),
        mem,
        reference: |mem| u64::from(le_u32(mem, 0)) + u64::from(le_u32(mem, 4)),
    }
}

fn log2() -> Workload {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut mem = Vec::with_capacity(LOG2_INPUTS * 8);
    for _ in 0..LOG2_INPUTS {
        // Uniform bit lengths, so the inner loop runs 0..63 times.
        let shift = rng.next() % 64;
        let value = rng.next() >> shift;
        mem.extend_from_slice(&value.to_le_bytes());
    }
    Workload {
        name: "log2",
        native_symbol: "bench_log2".into(),
        description: format!("sum of floor(log2 x) by a shift loop over {LOG2_INPUTS} u64"),
        code: Code::Asm(
            "\
mov %r0, 0
mov %r3, %r1
add %r3, %r2
mov %r5, %r1
add %r5, 8
jgt %r5, %r3, done
outer:
ldxdw %r4, [%r1+0]
rsh %r4, 1
jeq %r4, 0, next
inner:
add %r0, 1
rsh %r4, 1
jne %r4, 0, inner
next:
add %r1, 8
add %r5, 8
jle %r5, %r3, outer
done:
exit
"
            .into(),
        ),
        mem,
        reference: |mem| {
            mem.chunks_exact(8)
                .map(|chunk| {
                    let x = le_u64(chunk, 0) >> 1;
                    u64::from(64 - x.leading_zeros())
                })
                .sum()
        },
    }
}

fn primes() -> Workload {
    Workload {
        name: "primes",
        native_symbol: "bench_primes".into(),
        description: format!("count primes below {PRIMES_LIMIT} by trial division (u64 mod)"),
        code: Code::Asm(
            "\
ldxdw %r6, [%r1+0]
mov %r0, 0
mov %r2, 2
jge %r2, %r6, done
outer:
mov %r3, 2
inner:
mov %r4, %r3
mul %r4, %r3
jgt %r4, %r2, prime
mov %r5, %r2
mod %r5, %r3
jeq %r5, 0, next
add %r3, 1
ja inner
prime:
add %r0, 1
next:
add %r2, 1
jlt %r2, %r6, outer
done:
exit
"
            .into(),
        ),
        mem: PRIMES_LIMIT.to_le_bytes().to_vec(),
        reference: |mem| {
            let limit = le_u64(mem, 0);
            let is_prime = |n: u64| {
                (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
            };
            (2..limit).filter(|&n| is_prime(n)).count() as u64
        },
    }
}

fn memcpy() -> Workload {
    let mut rng = Rng(0xfeed_face_cafe_f00d);
    let mut mem = vec![0u8; MEMCPY_BYTES * 2];
    for byte in &mut mem[..MEMCPY_BYTES] {
        *byte = rng.next() as u8;
    }
    Workload {
        name: "memcpy",
        native_symbol: "bench_memcpy".into(),
        description: format!("byte-by-byte copy of {MEMCPY_BYTES} bytes within memory"),
        code: Code::Asm(
            "\
mov %r0, 0
rsh %r2, 1
mov %r4, %r1
add %r4, %r2
mov %r5, %r4
jge %r1, %r5, done
loop:
ldxb %r0, [%r1+0]
stxb [%r4+0], %r0
add %r1, 1
add %r4, 1
jlt %r1, %r5, loop
done:
exit
"
            .into(),
        ),
        mem,
        reference: |mem| {
            let half = mem.len() / 2;
            let (src, dst) = mem.split_at_mut(half);
            dst[..half].copy_from_slice(src);
            src.last().map_or(0, |&b| u64::from(b))
        },
    }
}

fn strcmp() -> Workload {
    let mut rng = Rng(0x5eed_0f57_c39c_3e00);
    let half = STRCMP_CHARS + 1;
    let mut mem = vec![0u8; half * 2];
    for i in 0..STRCMP_CHARS {
        let c = b'!' + (rng.next() % 94) as u8;
        mem[i] = c;
        mem[half + i] = c;
    }
    Workload {
        name: "strcmp",
        native_symbol: "bench_strcmp".into(),
        description: format!("strcmp of two equal {STRCMP_CHARS}-char strings"),
        code: Code::Asm(
            "\
mov %r3, %r2
rsh %r3, 1
add %r3, %r1
mov %r6, %r1
loop:
ldxb %r4, [%r1+0]
ldxb %r5, [%r3+0]
jne %r4, %r5, end
jeq %r4, 0, end
add %r1, 1
add %r3, 1
ja loop
end:
mov %r0, %r4
sub %r0, %r5
lsh %r0, 32
sub %r1, %r6
or %r0, %r1
exit
"
            .into(),
        ),
        mem,
        reference: |mem| {
            let (a, b) = mem.split_at(mem.len() / 2);
            let mut i = 0;
            while a[i] == b[i] && a[i] != 0 {
                i += 1;
            }
            let diff = i64::from(a[i]) - i64::from(b[i]);
            ((diff as u64) << 32) | i as u64
        },
    }
}

/// One case of the switch workload; the accumulator is r0, r5 is scratch.
#[derive(Clone, Copy)]
enum Case {
    Add(i32),
    Xor(i32),
    Mul(i32),
    /// `acc -= acc >> s`
    SubShr(u32),
    /// `acc = acc.rotate_left(s)`
    Rotl(u32),
}

/// The switch's cases 0..=29, the same as in `bench_switch` in `benches/native.c`. Values 30
/// and above take the default case, `acc += 1`. Immediates stay below 2^31 because BPF
/// sign-extends them.
#[rustfmt::skip]
const SWITCH_CASES: [Case; 30] = [
    Case::Add(0x1f3),     Case::Xor(0x5a5a5a),    Case::Mul(0x1e3779b1), Case::SubShr(3),  Case::Rotl(5),
    Case::Add(0x7777),    Case::Xor(0x13579b),    Case::Mul(0x2545f491), Case::SubShr(7),  Case::Rotl(11),
    Case::Add(0x1234567), Case::Xor(0x0f0f0f0f),  Case::Mul(0x61c88647), Case::SubShr(11), Case::Rotl(17),
    Case::Add(0x31),      Case::Xor(0x7fffffff),  Case::Mul(0x5851f42d), Case::SubShr(13), Case::Rotl(23),
    Case::Add(0xabcdef),  Case::Xor(0x2468ace),   Case::Mul(0x27d4eb2f), Case::SubShr(17), Case::Rotl(29),
    Case::Add(0x5),       Case::Xor(0x1),         Case::Mul(0x165667b1), Case::SubShr(19), Case::Rotl(31),
];

impl Case {
    fn apply(self, acc: u64) -> u64 {
        match self {
            Case::Add(c) => acc.wrapping_add(c as u64),
            Case::Xor(c) => acc ^ c as u64,
            Case::Mul(c) => acc.wrapping_mul(c as u64),
            Case::SubShr(s) => acc - (acc >> s),
            Case::Rotl(s) => acc.rotate_left(s),
        }
    }

    fn emit(self, out: &mut String) {
        let text = match self {
            Case::Add(c) => format!("add %r0, {c:#x}\n"),
            Case::Xor(c) => format!("xor %r0, {c:#x}\n"),
            Case::Mul(c) => format!("mul %r0, {c:#x}\n"),
            Case::SubShr(s) => format!("mov %r5, %r0\nrsh %r5, {s}\nsub %r0, %r5\n"),
            Case::Rotl(s) => format!(
                "mov %r5, %r0\nrsh %r5, {}\nlsh %r0, {s}\nor %r0, %r5\n",
                64 - s
            ),
        };
        out.push_str(&text);
    }
}

/// Emits a binary search over `lo..=hi` on r4 that jumps to `case_<k>` or `default`, the shape
/// a C compiler gives a dense switch on BPF (which has no indirect jump).
fn emit_dispatch(out: &mut String, lo: u32, hi: u32) {
    if hi - lo < 3 {
        for k in lo..=hi {
            let _ = writeln!(out, "jeq %r4, {k}, case_{k}");
        }
        out.push_str("ja default\n");
        return;
    }
    let mid = (lo + hi) / 2;
    let right = format!("tree_{}_{hi}", mid + 1);
    let _ = writeln!(out, "jgt %r4, {mid}, {right}");
    emit_dispatch(out, lo, mid);
    let _ = writeln!(out, "{right}:");
    emit_dispatch(out, mid + 1, hi);
}

fn switch() -> Workload {
    let mut rng = Rng(0x0dd_ba11_c0ff_ee00);
    let mem: Vec<u8> = (0..SWITCH_BYTES).map(|_| (rng.next() % 32) as u8).collect();
    let last_case = SWITCH_CASES.len() as u32 - 1;
    let mut asm = String::from(
        "\
mov %r0, 0x12345
mov %r3, %r1
add %r3, %r2
jge %r1, %r3, done
loop:
ldxb %r4, [%r1+0]
",
    );
    emit_dispatch(&mut asm, 0, last_case);
    for (k, case) in SWITCH_CASES.iter().enumerate() {
        let _ = writeln!(asm, "case_{k}:");
        case.emit(&mut asm);
        asm.push_str("ja next\n");
    }
    asm.push_str(
        "\
default:
add %r0, 1
next:
add %r1, 1
jlt %r1, %r3, loop
done:
exit
",
    );
    Workload {
        name: "switch",
        native_symbol: "bench_switch".into(),
        description: format!("30-case switch on each of {SWITCH_BYTES} bytes"),
        code: Code::Asm(asm),
        mem,
        reference: |mem| {
            mem.iter()
                .fold(0x12345, |acc, &b| match SWITCH_CASES.get(usize::from(b)) {
                    Some(case) => case.apply(acc),
                    None => acc.wrapping_add(1),
                })
        },
    }
}

pub fn le_u32(mem: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&mem[at..at + 4]);
    u32::from_le_bytes(bytes)
}

pub fn le_u64(mem: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&mem[at..at + 8]);
    u64::from_le_bytes(bytes)
}
