//! Where compiled code starts: a run of NOPs before the entry that places the innermost
//! loops across as few 64-byte lines as possible (`docs/performance.md`, "Loop placement").
//!
//! x86 cores fetch and cache decoded instructions by aligned 32- and 64-byte windows. A loop
//! of a few instructions that fits one 64-byte line runs from one entry of the decoded-op
//! cache per iteration; the same bytes straddling a line boundary need two, and on the cores
//! we measured ran up to 1.5x slower (`c_log2`'s inner loop: 53 µs at one placement, 81 µs
//! sixteen bytes further on). Cranelift does not align blocks, so the placement used to
//! depend on everything before the loop. Compilers align loop heads with padding inside the
//! function; with Cranelift's finished code we can only move the whole function, so we pick
//! the start offset that is best for the loops that run most: the innermost ones. Executable
//! mappings start on a page, so an offset there is an offset in every line.

use alloc::vec::Vec;

/// Cache-line size the placement optimises for.
const LINE: usize = 64;

/// The number of NOP bytes to put before code of `code_len` bytes whose basic blocks start at
/// `block_starts` and whose control edges are `edges` (`(from block start, to block start)`,
/// as Cranelift reports them): the smallest offset below [`LINE`] at which the innermost
/// loops no longer than a line cross the fewest line boundaries. 0 when the code has no
/// such loop, or no offset does better than none.
pub(crate) fn entry_pad(
    block_starts: &[usize],
    edges: &[(usize, usize)],
    code_len: usize,
) -> usize {
    let mut starts = block_starts.to_vec();
    starts.sort_unstable();
    let block_end = |start: usize| {
        let next = starts.partition_point(|&s| s <= start);
        starts.get(next).copied().unwrap_or(code_len)
    };
    // A back edge closes the loop from its target to the end of its source block.
    let mut loops: Vec<(usize, usize)> = edges
        .iter()
        .filter(|&&(from, to)| to <= from)
        .map(|&(from, to)| (to, block_end(from)))
        .filter(|&(start, end)| start < end)
        .collect();
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
    // Only loops that fit one line can be moved into one; longer ones keep their place
    // (packing a long, branchy loop into fewer lines measured slower on some programs).
    innermost.retain(|&(start, end)| end - start <= LINE);
    let crossings = |pad: usize| -> usize {
        innermost
            .iter()
            .map(|&(s, e)| (e + pad - 1) / LINE - (s + pad) / LINE)
            .sum()
    };
    (0..LINE)
        .min_by_key(|&pad| (crossings(pad), pad))
        .unwrap_or(0)
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

    #[test]
    fn a_small_loop_is_moved_into_one_line() {
        // Blocks at 0, 40 (the loop, 40..80, jumping back to itself) and 80.
        let pad = entry_pad(&[0, 40, 80], &[(0, 40), (40, 40), (40, 80)], 100);
        assert_eq!(pad, 24, "the loop starts at 64");
        // Already inside one line: nothing to do.
        assert_eq!(entry_pad(&[0, 8, 40], &[(8, 8), (8, 40)], 60), 0);
        // Longer than a line: left where it is.
        assert_eq!(entry_pad(&[0, 40, 140], &[(40, 40), (40, 140)], 150), 0);
        // No loop.
        assert_eq!(entry_pad(&[0, 40], &[(0, 40)], 60), 0);
    }

    #[test]
    fn only_innermost_loops_count() {
        // An outer loop 0..200 around an inner loop 100..130 (crosses 128 unpadded).
        let pad = entry_pad(&[0, 100, 130], &[(100, 100), (130, 0)], 200);
        assert_eq!(pad, 28, "the inner loop starts at 128");
    }

    #[test]
    fn nops_have_the_requested_length() {
        for n in 0..64 {
            assert_eq!(nops(n).len(), n);
        }
        assert_eq!(nops(9), [0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0, 0x90]);
    }
}
