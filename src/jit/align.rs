//! Where compiled code starts: a run of NOPs before the entry that places the innermost
//! loops across as few 64-byte lines as possible (`docs/performance.md`, "Loop placement").
//!
//! x86 cores fetch and cache decoded instructions by aligned 32- and 64-byte windows. A loop
//! of a few instructions that fits one 64-byte line runs from one entry of the decoded-op
//! cache per iteration; the same bytes straddling a line boundary need two, and on the cores
//! we measured ran up to 1.5x slower (`c_log2`'s inner loop: 52 µs at one placement, 80 µs
//! 29 bytes further on). Cranelift does not align blocks, so the placement used to
//! depend on everything before the loop. Compilers align loop heads with padding inside the
//! function; with Cranelift's finished code we can only move the whole function, so we pick
//! the start offset that is best for the loops that run most: the innermost ones. Executable
//! mappings start on a page, so an offset there is an offset in every line. x86-64 only: the
//! loops are found by decoding x86 jumps and the padding is x86 NOPs.

use alloc::vec::Vec;

/// Cache-line size the placement optimises for.
const LINE: usize = 64;

/// The number of NOP bytes to put before `code`, whose basic blocks start at `block_starts`
/// (Cranelift's `CompiledCode::bb_starts`): the smallest offset below [`LINE`] at which the
/// innermost loops no longer than a line cross the fewest line boundaries and, among those,
/// the innermost loops of up to two lines start nearest the start of a line. 0 when the code
/// has no such loop, or no offset does better than none.
///
/// Loops are found from the code itself: each block's closing `jmp rel32` and `jcc rel32`
/// (the only jump forms Cranelift's x64 backend emits) that land on a block start at or
/// before the jump. (Cranelift's own list of edges cannot be used: it pairs blocks in
/// emission order with successors in lowering order, which differ once cold blocks move to
/// the end, as every function with a fault path has.)
pub(crate) fn entry_pad(code: &[u8], block_starts: &[u32]) -> usize {
    let mut starts: Vec<usize> = block_starts.iter().map(|&s| s as usize).collect();
    starts.push(code.len());
    starts.sort_unstable();
    starts.dedup();
    let mut loops = Vec::new();
    for pair in starts.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        for (at, target) in closing_jumps(code, start, end).into_iter().flatten() {
            if target <= at && starts.binary_search(&target).is_ok() {
                loops.push((target, end));
            }
        }
    }
    // By start, the longest first: a loop is innermost when no later one ends within it.
    loops.sort_unstable_by_key(|&(start, end)| (start, core::cmp::Reverse(end)));
    loops.dedup();
    let mut innermost = Vec::new();
    let mut least_later_end = usize::MAX;
    for &(start, end) in loops.iter().rev() {
        if least_later_end > end {
            innermost.push((start, end));
        }
        least_later_end = least_later_end.min(end);
    }
    // Loops that fit one line are moved into one. Loops of up to two lines start on a line
    // (a binary search's probe, 76 to 85 bytes with five branches, ran at 13 to 17 ns so
    // placed and at up to 25 ns elsewhere); longer ones keep their place (packing a long,
    // branchy loop into fewer lines measured slower on some programs).
    innermost.retain(|&(start, end)| end - start <= 2 * LINE);
    let (one_line, two_lines): (Vec<_>, Vec<_>) = innermost
        .into_iter()
        .partition(|&(start, end)| end - start <= LINE);
    let crossings = |pad: usize| -> usize {
        one_line
            .iter()
            .map(|&(s, e)| (e + pad - 1) / LINE - (s + pad) / LINE)
            .sum()
    };
    let off_line = |pad: usize| -> usize { two_lines.iter().map(|&(s, _)| (s + pad) % LINE).sum() };
    (0..LINE)
        .min_by_key(|&pad| (crossings(pad), off_line(pad), pad))
        .unwrap_or(0)
}

/// The jumps that close the block `code[start..end]`: `(offset of the jump, target)` for a
/// final `jmp rel32` (`e9`) and a `jcc rel32` (`0f 8x`) right before it or at the end.
fn closing_jumps(code: &[u8], start: usize, end: usize) -> [Option<(usize, usize)>; 2] {
    let rel32 = |at: usize| -> Option<i64> {
        let bytes: [u8; 4] = code.get(at..at + 4)?.try_into().ok()?;
        Some(i64::from(i32::from_le_bytes(bytes)))
    };
    let target = |next: usize, rel: i64| usize::try_from(next as i64 + rel).ok();
    let mut found = [None, None];
    let mut tail = end;
    if tail >= start + 5 && code.get(tail - 5) == Some(&0xe9) {
        found[0] = rel32(tail - 4)
            .and_then(|r| target(tail, r))
            .map(|t| (tail - 5, t));
        tail -= 5;
    }
    if tail >= start + 6
        && code.get(tail - 6) == Some(&0x0f)
        && code.get(tail - 5).is_some_and(|b| b & 0xf0 == 0x80)
    {
        found[1] = rel32(tail - 4)
            .and_then(|r| target(tail, r))
            .map(|t| (tail - 6, t));
    }
    found
}

/// `n` bytes of x86 NOP instructions (8-byte `nopl 0(%rax,%rax,1)` and one shorter NOP for
/// the rest), which run through to the code after them.
pub(crate) fn nops(n: usize) -> Vec<u8> {
    const NOPS: [&[u8]; 8] = [
        &[0x90],
        &[0x66, 0x90],
        &[0x0f, 0x1f, 0x00],
        &[0x0f, 0x1f, 0x40, 0x00],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    let mut out = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let k = left.min(8);
        out.extend_from_slice(NOPS[k - 1]);
        left -= k;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code of `len` bytes (NOPs) with a `jmp rel32` at the end of each `(block end, target)`.
    fn code_with_jumps(len: usize, jumps: &[(usize, usize)]) -> Vec<u8> {
        let mut code = nops(len);
        for &(end, target) in jumps {
            code[end - 5] = 0xe9;
            let rel = (target as i32) - (end as i32);
            code[end - 4..end].copy_from_slice(&rel.to_le_bytes());
        }
        code
    }

    #[test]
    fn a_small_loop_is_moved_into_one_line() {
        // Blocks at 0, 40 (the loop, 40..80, jumping back to itself) and 80.
        let code = code_with_jumps(100, &[(80, 40)]);
        assert_eq!(entry_pad(&code, &[0, 40, 80]), 24, "the loop starts at 64");
        // Already inside one line: nothing to do.
        let code = code_with_jumps(60, &[(40, 8)]);
        assert_eq!(entry_pad(&code, &[0, 8, 40]), 0);
        // Up to two lines: it starts on a line.
        let code = code_with_jumps(150, &[(140, 40)]);
        assert_eq!(entry_pad(&code, &[0, 40, 140]), 24);
        // Longer: left where it is.
        let code = code_with_jumps(200, &[(180, 40)]);
        assert_eq!(entry_pad(&code, &[0, 40, 180]), 0);
        // A forward jump is no loop.
        let code = code_with_jumps(100, &[(45, 80)]);
        assert_eq!(entry_pad(&code, &[0, 45, 80]), 0);
    }

    #[test]
    fn only_innermost_loops_count() {
        // An outer loop 0..200 around an inner loop 100..130 (crosses 128 unpadded), closed
        // by a conditional jump (`jne rel32`).
        let mut code = code_with_jumps(200, &[(200, 0)]);
        code[124..126].copy_from_slice(&[0x0f, 0x85]);
        code[126..130].copy_from_slice(&(100i32 - 130).to_le_bytes());
        assert_eq!(
            entry_pad(&code, &[0, 100, 130]),
            28,
            "the inner loop starts at 128"
        );
    }

    #[test]
    fn nops_have_the_requested_length() {
        for n in 0..64 {
            assert_eq!(nops(n).len(), n);
        }
        assert_eq!(nops(9), [0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0, 0x90]);
    }
}
