//! Differential tests of the compare-loop fast-forward (`src/exec/idiom/compare.rs`): loops
//! in several shapes (index and pointer form, counting up and down, exits on `!=`, on a `<`
//! plus a `>`, on a zero terminator, with and without a length bound, sign- and
//! zero-extended elements, 32-bit compares, widths 1 to 8, strings on the stack) run over
//! inputs that mismatch in the first element, in the last, nowhere, end at a terminator in
//! the first element, run off the end of memory (the fault must come at the interpreter's pc
//! after the same iterations), overlap, and count through a wrap. The interpreter's
//! per-instruction loop (an instruction limit selects it) is the oracle for its fast path,
//! the JIT, and the JIT with a limit (no idioms), with bounds checks on and, for runs that
//! stay in bounds, off.

mod common;

use common::engines::{self, engine};

/// Bytes of input memory: a 32-byte header (N, A, B, C words) and the data.
const MEM_LEN: usize = 32 + 1024;

fn loads(width: u8) -> &'static str {
    match width {
        1 => "ldxb",
        2 => "ldxh",
        4 => "ldxw",
        _ => "ldxdw",
    }
}

/// memcmp, index form: N elements of `width` bytes at data and data + A; returns the
/// element difference and the index, or N * width when equal.
fn memcmp_index(width: u8) -> String {
    let ld = loads(width);
    format!(
        "ldxdw %r2, [%r1+0]\nmul %r2, {width}\nldxdw %r3, [%r1+8]\nadd %r1, 32\nmov %r4, %r1\n\
         add %r4, %r3\nmov %r5, 0\njeq %r2, 0, out\nloop:\nmov %r6, %r1\nadd %r6, %r5\n\
         {ld} %r7, [%r6+0]\nmov %r6, %r4\nadd %r6, %r5\n{ld} %r8, [%r6+0]\n\
         jne %r7, %r8, diff\nadd %r5, {width}\njlt %r5, %r2, loop\nout:\nmov %r0, %r5\nexit\n\
         diff:\nmov %r0, %r7\nsub %r0, %r8\nlsh %r0, 16\nadd %r0, %r5\nexit\n"
    )
}

/// strcmp, pointer form, signed bytes (`<<56 s>>56`), a `<` exit and a `>` exit, the
/// terminator tested after them; returns the position and which exit.
const STRCMP_SIGNED: &str = "ldxdw %r3, [%r1+8]\nadd %r1, 32\nmov %r2, %r1\nadd %r2, %r3\n\
    mov %r9, %r1\nloop:\nldxb %r4, [%r1+0]\nldxb %r5, [%r2+0]\nlsh %r4, 56\narsh %r4, 56\n\
    lsh %r5, 56\narsh %r5, 56\njslt %r4, %r5, less\njsgt %r4, %r5, more\njeq %r4, 0, same\n\
    add %r1, 1\nadd %r2, 1\nja loop\nless:\nmov %r0, 1\nja done\nmore:\nmov %r0, 2\nja done\n\
    same:\nmov %r0, 3\ndone:\nsub %r1, %r9\nlsh %r1, 8\nadd %r0, %r1\nexit\n";

/// strncmp counting down with a 32-bit compare of the count and of masked bytes; the
/// terminator tested on the second string.
const STRNCMP_DOWN: &str = "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nadd %r1, 32\n\
    mov %r4, %r1\nadd %r4, %r3\nmov %r9, %r1\nmov %r0, 0\njeq %r2, 0, done\nloop:\n\
    ldxb %r5, [%r1+0]\nldxb %r6, [%r4+0]\nand %r5, 0xff\nmov32 %r7, %r6\n\
    jne32 %r5, %r7, diff\njeq32 %r7, 0, done\nadd %r1, 1\nadd %r4, 1\nadd %r2, -1\n\
    jne32 %r2, 0, loop\nja done\ndiff:\nmov %r0, 7\ndone:\nsub %r1, %r9\nlsh %r1, 8\n\
    add %r0, %r1\nlsh %r2, 32\nadd %r0, %r2\nexit\n";

/// memcmp of u32 words from the last element down (pointers moving down, a count).
const MEMCMP_DOWN_U32: &str = "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nadd %r1, 32\n\
    mov %r9, %r1\nmov %r4, %r1\nadd %r4, %r3\nmov %r6, %r2\nlsh %r6, 2\nadd %r6, -4\n\
    add %r1, %r6\nadd %r4, %r6\nloop:\njeq %r2, 0, same\nldxw %r7, [%r1+0]\n\
    ldxw %r8, [%r4+0]\njne %r7, %r8, diff\nadd %r1, -4\nadd %r4, -4\nadd %r2, -1\nja loop\n\
    same:\nmov %r0, 0\nexit\ndiff:\nmov %r0, %r2\nadd %r0, 1000\nexit\n";

/// A counter that wraps through zero (`!=` bound 2, starting at 2^64 - N % 64) while the
/// pointers move up; u64 elements.
const WRAPPING_COUNTER: &str = "ldxdw %r2, [%r1+0]\nand %r2, 63\nneg %r2\n\
    ldxdw %r3, [%r1+8]\nadd %r1, 32\nmov %r4, %r1\nadd %r4, %r3\nmov %r9, %r1\nloop:\n\
    ldxdw %r5, [%r1+0]\nldxdw %r6, [%r4+0]\njne %r5, %r6, out\nadd %r1, 8\nadd %r4, 8\n\
    add %r2, 1\njne %r2, 2, loop\nout:\nmov %r0, %r1\nsub %r0, %r9\nlsh %r2, 16\n\
    add %r0, %r2\nexit\n";

/// strcmp of two strings copied onto the stack (64 bytes each, from data and data + A): no
/// terminator in them runs off the top of the stack.
const STACK_STRCMP: &str = "ldxdw %r3, [%r1+8]\nadd %r1, 32\nmov %r2, %r1\nadd %r2, %r3\n\
    mov %r5, 0\ncopy:\nmov %r6, %r1\nadd %r6, %r5\nldxdw %r7, [%r6+0]\nmov %r6, %r10\n\
    add %r6, %r5\nstxdw [%r6-128], %r7\nmov %r6, %r2\nadd %r6, %r5\nldxdw %r7, [%r6+0]\n\
    mov %r6, %r10\nadd %r6, %r5\nstxdw [%r6-64], %r7\nadd %r5, 8\njlt %r5, 64, copy\n\
    mov %r1, %r10\nadd %r1, -128\nmov %r2, %r10\nadd %r2, -64\nmov %r9, %r1\nloop:\n\
    ldxb %r4, [%r1+0]\nldxb %r5, [%r2+0]\njne %r4, %r5, out\njeq %r4, 0, out\nadd %r1, 1\n\
    add %r2, 1\nja loop\nout:\nmov %r0, %r1\nsub %r0, %r9\nlsh %r0, 16\nadd %r0, %r4\n\
    sub %r0, %r5\nexit\n";

/// strcpy: copies bytes up to and including the terminator (a copy loop with a second,
/// data-dependent exit); returns the length.
const STRCPY: &str = "ldxdw %r3, [%r1+8]\nadd %r1, 32\nmov %r2, %r1\nadd %r2, %r3\n\
    mov %r9, %r1\nloop:\nldxb %r4, [%r1+0]\nstxb [%r2+0], %r4\njeq %r4, 0, out\n\
    add %r1, 1\nadd %r2, 1\nja loop\nout:\nmov %r0, %r1\nsub %r0, %r9\nexit\n";

/// strncpy of u16 elements by index with a count: leaves on a zero element or when N runs
/// out; returns the index and the last element.
const STRNCPY_U16: &str = "ldxdw %r5, [%r1+0]\nldxdw %r3, [%r1+8]\nand %r3, -2\nadd %r1, 32\n\
    mov %r2, %r1\nadd %r2, %r3\nmov %r6, 0\njeq %r5, 0, out\nloop:\nmov %r7, %r1\n\
    add %r7, %r6\nldxh %r4, [%r7+0]\nmov %r7, %r2\nadd %r7, %r6\nstxh [%r7+0], %r4\n\
    jeq32 %r4, 0, out\nadd %r6, 2\nadd %r5, -1\njne %r5, 0, loop\nout:\nmov %r0, %r6\n\
    lsh %r0, 16\nadd %r0, %r4\nexit\n";

/// Insertion sort's inner loop: from element N of u32 data downwards, moves each element up
/// by one while it is above X (A's low 32 bits) and the count lasts; stores X in the hole.
/// The store overwrites what the previous iteration loaded (an overlapping shift).
const SHIFT_UP_U32: &str = "ldxdw %r6, [%r1+0]\nldxw %r5, [%r1+8]\nadd %r1, 32\n\
    mov %r0, %r6\nlsh %r0, 2\nadd %r0, %r1\njeq %r6, 0, out\nloop:\nldxw %r8, [%r0-4]\n\
    jle32 %r8, %r5, out\nstxw [%r0+0], %r8\nadd %r0, -4\nadd %r6, -1\njne %r6, 0, loop\n\
    out:\nstxw [%r0+0], %r5\nmov %r0, %r6\nexit\n";

/// Deletes element 0 of u32 data by moving the next ones down, up to and including the
/// first zero or N elements (the store lands below the load, an overlapping shift).
const SHIFT_DOWN_U32: &str = "ldxdw %r2, [%r1+0]\nadd %r1, 36\nmov %r9, %r1\n\
    jeq %r2, 0, out\nloop:\nldxw %r4, [%r1+0]\nstxw [%r1-4], %r4\njeq %r4, 0, out\n\
    add %r1, 4\nadd %r2, -1\njne %r2, 0, loop\nout:\nmov %r0, %r1\nsub %r0, %r9\nexit\n";

/// The same move in the wrong direction: each store feeds the next load, so element 0
/// spreads over the next N (no single move has that meaning; it must run as a loop).
const SPREAD_U32: &str = "ldxdw %r2, [%r1+0]\nadd %r1, 32\nmov %r9, %r1\n\
    jeq %r2, 0, out\nloop:\nldxw %r4, [%r1+0]\nstxw [%r1+4], %r4\njeq %r4, 0, out\n\
    add %r1, 4\nadd %r2, -1\njne %r2, 0, loop\nout:\nmov %r0, %r1\nsub %r0, %r9\nexit\n";

/// The copy shapes (a copy with an early exit, fast-forwarded the same way).
fn copy_shapes() -> Vec<(String, String)> {
    vec![
        ("strcpy".to_string(), STRCPY.to_string()),
        ("strncpy u16".to_string(), STRNCPY_U16.to_string()),
        ("shift up u32".to_string(), SHIFT_UP_U32.to_string()),
        ("shift down u32".to_string(), SHIFT_DOWN_U32.to_string()),
        ("spread u32".to_string(), SPREAD_U32.to_string()),
    ]
}

/// strchr for A's low byte: the byte to find is recomputed from an invariant register in
/// every iteration (`mov32`, `and32`), as clang does for a `uint8_t` argument; returns the
/// position, or -1 at the terminator.
const STRCHR_MASKED: &str = "ldxdw %r2, [%r1+8]\nadd %r1, 32\nmov %r9, %r1\nloop:\n\
    ldxb %r3, [%r1+0]\nmov32 %r5, %r2\nand32 %r5, 255\njeq32 %r3, %r5, found\n\
    jeq %r3, 0, none\nadd %r1, 1\nja loop\nfound:\nmov %r0, %r1\nsub %r0, %r9\nexit\n\
    none:\nmov %r0, -1\nexit\n";

/// The compare shapes.
fn shapes() -> Vec<(String, String)> {
    let mut out = vec![
        ("strchr masked".to_string(), STRCHR_MASKED.to_string()),
        ("strcmp signed".to_string(), STRCMP_SIGNED.to_string()),
        ("strncmp down".to_string(), STRNCMP_DOWN.to_string()),
        ("memcmp down u32".to_string(), MEMCMP_DOWN_U32.to_string()),
        ("wrapping counter".to_string(), WRAPPING_COUNTER.to_string()),
        ("stack strcmp".to_string(), STACK_STRCMP.to_string()),
        // The same counter compared on 32 bits: it wraps through 2^32 instead.
        (
            "wrapping 32-bit compare".to_string(),
            WRAPPING_COUNTER.replace("jne %r2, 2, loop", "jne32 %r2, 2, loop"),
        ),
    ];
    for width in [1, 2, 4, 8] {
        out.push((format!("memcmp index u{}", width * 8), memcmp_index(width)));
    }
    out
}

/// Inputs: (N, A, where the data first differs, where the first zero byte is); `None`:
/// nowhere in the buffer.
fn inputs() -> Vec<Vec<u8>> {
    let cases: &[(u64, u64, Option<usize>, Option<usize>)] = &[
        // Mismatch in the first element, in the last (of 16 elements of up to 8 bytes), none.
        (16, 512, Some(0), None),
        (16, 512, Some(15), None),
        (16, 512, Some(127), None),
        (16, 512, None, Some(400)),
        // A terminator in the first element.
        (16, 512, None, Some(0)),
        (16, 512, Some(3), Some(0)),
        // Equal far beyond N, terminator late.
        (100, 512, None, Some(300)),
        // Runs off the end of memory: N too large, no terminator, no mismatch.
        (5000, 256, None, None),
        (5000, 8, None, None),
        // Overlapping: the same range, or shifted by one element.
        (64, 0, None, Some(200)),
        (64, 1, None, None),
        (64, 4, None, Some(900)),
        (0, 512, None, None),
        // The second range runs off the end first.
        (200, 900, None, Some(300)),
        (1, 512, Some(0), None),
        (2, 512, Some(1), None),
    ];
    let mut out = Vec::new();
    for &(n, a, differ, zero) in cases {
        let mut mem = vec![0u8; MEM_LEN];
        mem[0..8].copy_from_slice(&n.to_le_bytes());
        mem[8..16].copy_from_slice(&a.to_le_bytes());
        // Non-zero bytes with a period that keeps shifted copies equal: data[i] = 1 + i % 7
        // for the overlapping cases, else a pattern repeated at offset A.
        let data = &mut mem[32..];
        let len = data.len();
        for (i, b) in data.iter_mut().enumerate() {
            *b = if a == 1 || a == 4 {
                0x41
            } else {
                1 + ((i % 512) * 37 % 251) as u8
            };
        }
        if let Some(d) = differ
            && (a as usize) + d < len
        {
            data[a as usize + d] ^= 0x80;
        }
        if let Some(z) = zero {
            data[z] = 0;
            if (a as usize) + z < len {
                data[a as usize + z] = 0;
            }
        }
        out.push(mem);
    }
    out
}

fn compare(text: &str, bounds: bool, mem: &[u8]) -> Result<engines::Outcome, String> {
    engines::against_per_instruction(text, bounds, mem, 1 << 24)
}

#[test]
fn every_shape_is_recognised() {
    for (name, text) in shapes() {
        let code = rbpf::asm::assemble_bytes(&text).expect("assembles");
        let mut vm = rbpf::Vm::new();
        vm.load(&code).expect("loads");
        let census = rbpf::exec::census(&vm.program().expect("loaded").insns);
        assert!(census.compare >= 1, "{name}: not recognised");
    }
    for (name, text) in copy_shapes() {
        let code = rbpf::asm::assemble_bytes(&text).expect("assembles");
        let mut vm = rbpf::Vm::new();
        vm.load(&code).expect("loads");
        let census = rbpf::exec::census(&vm.program().expect("loaded").insns);
        assert!(census.copy >= 1, "{name}: not recognised");
    }
}

#[test]
fn fast_forward_matches_the_interpreter() {
    let mut failures = Vec::new();
    let mut faults = 0;
    for (name, text) in shapes().into_iter().chain(copy_shapes()) {
        for (k, mem) in inputs().iter().enumerate() {
            match compare(&text, true, mem) {
                Ok((result, _)) => {
                    if result.is_err() {
                        faults += 1;
                    } else if let Err(why) = compare(&text, false, mem) {
                        failures.push(format!("{name} input {k}, bounds off: {why}"));
                    }
                }
                Err(why) => failures.push(format!("{name} input {k}: {why}")),
            }
        }
    }
    assert!(faults > 0, "some inputs must run off the end");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The benchmark's strcmp programs over long strings: same result in every engine.
#[test]
fn long_strings() {
    for (len, differ) in [
        (100_000usize, None),
        (100_000, Some(99_990)),
        (70_001, Some(0)),
    ] {
        for (name, text) in shapes() {
            if !name.starts_with("strcmp") && !name.starts_with("memcmp index u8") {
                continue;
            }
            let mut mem = vec![0u8; 32 + 2 * len + 64];
            mem[0..8].copy_from_slice(&(len as u64).to_le_bytes());
            let a = len as u64 + 16;
            mem[8..16].copy_from_slice(&a.to_le_bytes());
            for i in 0..len - 1 {
                let c = b'a' + (i % 26) as u8;
                mem[32 + i] = c;
                mem[32 + a as usize + i] = c;
            }
            if let Some(d) = differ {
                mem[32 + a as usize + d] = b'#';
            }
            let outcome = compare(&text, true, &mem);
            assert!(outcome.is_ok(), "{name} len {len}: {outcome:?}");
        }
    }
}

/// Extended-mode compiled code (the caller's stack) gives the interpreter's result too.
#[test]
fn extended_mode_matches_the_interpreter() {
    for (name, text) in shapes().into_iter().chain(copy_shapes()) {
        let code = rbpf::asm::assemble_bytes(&text).expect("assembles");
        for (k, mem) in inputs().iter().enumerate() {
            let mut outcomes = Vec::new();
            for jit in [false, true] {
                let mut vm = rbpf::Vm::new();
                vm.set_error_printer(Some(Box::new(|_| {})));
                vm.load(&code).expect("loads");
                if jit {
                    vm.compile(rbpf::jit::JitMode::Extended).expect("compiles");
                }
                let mut words = vec![0u64; mem.len().div_ceil(8)];
                // SAFETY: u64 has no padding; the slice covers the first `mem.len()` bytes.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), mem.len())
                };
                bytes.copy_from_slice(mem);
                let result = if jit {
                    vm.execute_jit(bytes)
                } else {
                    vm.execute(bytes)
                };
                outcomes.push((result.map_err(|e| common::error_key(&e)), bytes.to_vec()));
            }
            assert!(
                outcomes[0] == outcomes[1],
                "{name} input {k}: {:x?} vs {:x?}",
                outcomes[0].0,
                outcomes[1].0
            );
        }
    }
}

/// clang 19's `-mcpu=v4` strcmp objects of the corpus (their loop compares the carried byte
/// through `w0 = w1; w0 &= 0xff` with a plain byte, and the signed source returns through
/// `movsx`/`ldsx`): over long strings that are equal, differ late, differ first, differ only
/// in the top bit, are made of bytes above 0x7f, or run off the end of memory, the
/// interpreter's fast path, the JIT and the JIT with a limit give the per-instruction
/// interpreter's result, error and memory.
#[test]
fn v4_strcmp_objects_match_the_interpreter() {
    let len = 20_000usize;
    let a = len + 16;
    let data = a + len + 48;
    let header = |mem: &mut Vec<u8>| mem[8..16].copy_from_slice(&(a as u64).to_le_bytes());
    let string = |high: bool, differ: Option<(usize, u8)>| {
        let mut mem = vec![0u8; 32 + data];
        header(&mut mem);
        for i in 0..len - 1 {
            let c = if high { 0x80 } else { b'a' } + (i % 26) as u8;
            mem[32 + i] = c;
            mem[32 + a + i] = c;
        }
        if let Some((at, c)) = differ {
            mem[32 + a + at] = c;
        }
        mem
    };
    let mut inputs = vec![
        string(false, None),
        string(true, None),
        string(false, Some((len - 10, b'#'))),
        string(false, Some((0, b'#'))),
        // The same low seven bits: only a signed or unsigned order tells them apart.
        string(false, Some((len / 2, b'a' + ((len / 2) % 26) as u8 + 0x80))),
        string(true, Some((len / 3, 0x7f))),
    ];
    // No terminator: both strings repeat with period A until `b` runs off the end.
    let mut endless = vec![0u8; 32 + data];
    header(&mut endless);
    for i in 0..data {
        endless[32 + i] = 1 + (i % a % 200) as u8;
    }
    inputs.push(endless);
    let limit = 1 << 24;
    let oracle = engine(false).limited(limit);
    let candidates = [
        ("interpreter fast path", engine(false)),
        ("JIT", engine(true)),
        ("JIT with a limit", engine(true).limited(limit)),
    ];
    let mut faults = 0;
    for stem in ["strcmp_ptr", "strcmp_while_and", "strcmp_idx"] {
        for opt in ["O1", "O2", "O3", "Os"] {
            let name = format!("{stem}-{opt}-v4");
            let object = std::fs::read(format!(
                "{}/tests/corpus/obj/{name}.o",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("object");
            for (k, mem) in inputs.iter().enumerate() {
                let outcome = engines::compare(&object, true, mem, oracle, &candidates);
                match outcome {
                    Ok((result, _)) => faults += usize::from(result.is_err()),
                    Err(why) => panic!("{name} input {k}: {why}"),
                }
            }
        }
    }
    assert!(faults > 0, "the endless strings must run off the end");
}
