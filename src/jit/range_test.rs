//! Two conditional jumps that together test whether one register lies in an interval
//! become one unsigned compare (`docs/performance.md`, "Range tests").
//!
//! C's `c >= 'a' && c <= 'z'` reaches eBPF, at -O1 and in hand-written code, as two jumps on
//! the same register and immediate bounds: `if c < 97 goto skip; if c > 122 goto skip`. On
//! data where the outcome is random, each of the two branches mispredicts on its own; the
//! interval test `(c - 97) <= 25` (unsigned) is one branch, as a C compiler emits it. The
//! pair fuses when the second jump is only reached by falling through the first, and either
//!
//! - both jump to the same slot: the program goes on at the second jump's next slot exactly
//!   when neither is taken, the intersection of the two "not taken" sets; or
//! - the first jumps to the second's next slot: the second's target is reached when the first
//!   is not taken and the second is, the intersection of one "not taken" and one "taken" set.
//!
//! Each single compare against a constant is taken on a ray (`x <= a` or `x >= b` in its
//! signedness), and so is its negation; the intersection of a lower and an upper ray is an
//! interval `[lo, hi]`, and `lo <= x <= hi` is `x - lo <= hi - lo` in wrapping unsigned
//! arithmetic of the compare's width, signed or not. Jumps do not fault and change no
//! register, so the fused test leaves every effect as it was; only an instruction limit
//! (which counts the second jump) turns the fusion off.

use crate::isa::{Insn, alu, class, jmp, source};

/// A pair of conditional jumps at `pc` and `pc + 1` decided by one interval test: control
/// goes to `inside` when `lo <= reg <= lo + span` (unsigned after subtracting `lo`, in 32
/// bits when `!wide`), to `outside` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RangeTest {
    /// The register compared.
    pub reg: u8,
    /// 64-bit compares (`false`: `jmp32`, the low 32 bits).
    pub wide: bool,
    /// The interval's first value, as the width's bit pattern.
    pub lo: u64,
    /// `hi - lo` (wrapping in the width).
    pub span: u64,
    /// Where control goes inside the interval.
    pub inside: usize,
    /// Where control goes outside it.
    pub outside: usize,
}

/// A set of values one compare with a constant is taken on: `x >= bound` (`upper`) or
/// `x <= bound`, in the compare's order (`bound` as a signed or unsigned number).
#[derive(Debug, Clone, Copy)]
struct Ray {
    upper: bool,
    bound: i128,
}

/// The order a pair of compares works in: its smallest and largest value.
#[derive(Debug, Clone, Copy)]
struct Order {
    min: i128,
    max: i128,
}

impl Ray {
    /// The values the ray leaves out, unless that is empty.
    fn complement(self, order: Order) -> Option<Ray> {
        if self.upper {
            (self.bound > order.min).then_some(Ray {
                upper: false,
                bound: self.bound - 1,
            })
        } else {
            (self.bound < order.max).then_some(Ray {
                upper: true,
                bound: self.bound + 1,
            })
        }
    }
}

/// The ray on which the ordering compare `operation` of `x` with `k` holds, if not empty; with
/// the order (signed or unsigned) it compares in.
fn taken_ray(operation: u8, k: i128, order: Order) -> Option<Ray> {
    let (upper, bound) = match operation {
        jmp::JLT | jmp::JSLT => (false, k.checked_sub(1).filter(|&b| b >= order.min)?),
        jmp::JLE | jmp::JSLE => (false, k),
        jmp::JGT | jmp::JSGT => (true, k.checked_add(1).filter(|&b| b <= order.max)?),
        jmp::JGE | jmp::JSGE => (true, k),
        _ => return None,
    };
    Some(Ray { upper, bound })
}

/// Whether an ordering compare is signed (`None`: not an ordering compare).
fn signedness(operation: u8) -> Option<bool> {
    match operation {
        jmp::JLT | jmp::JLE | jmp::JGT | jmp::JGE => Some(false),
        jmp::JSLT | jmp::JSLE | jmp::JSGT | jmp::JSGE => Some(true),
        _ => None,
    }
}

/// The constant of a compare in its order: the immediate sign-extended to 64 bits (`jmp`) or
/// taken as 32 bits (`jmp32`), read as signed or unsigned.
fn constant(insn: &Insn, wide: bool, signed: bool) -> i128 {
    let imm = i64::from(insn.imm);
    match (wide, signed) {
        (true, true) => i128::from(imm),
        (true, false) => i128::from(imm as u64),
        (false, true) => i128::from(imm as i32),
        (false, false) => i128::from(imm as u32),
    }
}

/// The interval test the conditional jumps at `pc` and `pc + 1` of `insns` amount to, if
/// they are one (see the module documentation). `entered[pc + 1]` tells whether any jump or
/// call lands on the second jump, which must be reached only by falling through the first.
pub(crate) fn fused_range_test(insns: &[Insn], entered: &[bool], pc: usize) -> Option<RangeTest> {
    let (first, second) = (insns.get(pc)?, insns.get(pc + 1)?);
    let cls = first.class();
    if !matches!(cls, class::JMP | class::JMP32)
        || second.class() != cls
        || first.opc & source::MASK != source::K
        || second.opc & source::MASK != source::K
        || first.dst != second.dst
        || entered.get(pc + 1) != Some(&false)
    {
        return None;
    }
    let (op1, op2) = (first.opc & alu::MASK, second.opc & alu::MASK);
    let signed = signedness(op1)?;
    if signedness(op2)? != signed {
        return None;
    }
    let wide = cls == class::JMP;
    let bits = if wide { 64 } else { 32 };
    let order = if signed {
        Order {
            min: -(1i128 << (bits - 1)),
            max: (1i128 << (bits - 1)) - 1,
        }
    } else {
        Order {
            min: 0,
            max: (1i128 << bits) - 1,
        }
    };
    let target = |pc: usize, insn: &Insn| usize::try_from(pc as i64 + 1 + i64::from(insn.off));
    let (t1, t2) = (target(pc, first).ok()?, target(pc + 1, second).ok()?);
    let after = pc + 2;
    let r1 = taken_ray(op1, constant(first, wide, signed), order)?;
    let r2 = taken_ray(op2, constant(second, wide, signed), order)?;
    // The interval, as two rays, and where control goes inside and outside it.
    let (a, b, inside, outside) = if t1 == t2 && t1 != after {
        (r1.complement(order)?, r2.complement(order)?, after, t1)
    } else if t1 == after && t2 != after {
        (r1.complement(order)?, r2, t2, after)
    } else {
        return None;
    };
    if a.upper == b.upper {
        return None;
    }
    let (lo, hi) = if a.upper {
        (a.bound, b.bound)
    } else {
        (b.bound, a.bound)
    };
    if lo > hi {
        return None;
    }
    let mask = if wide { u64::MAX } else { u64::from(u32::MAX) };
    Some(RangeTest {
        reg: first.dst & 0x0f,
        wide,
        lo: (lo as u64) & mask,
        span: ((hi - lo) as u64) & mask,
        inside,
        outside,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::op;

    /// Where the two jumps send `x` by their own meaning: `pc + 2` when neither is taken.
    fn by_the_jumps(insns: &[Insn], x: u64) -> usize {
        let mut pc = 0;
        while pc < 2 {
            let insn = &insns[pc];
            let wide = insn.class() == class::JMP;
            let (a, k) = if wide {
                (x, i64::from(insn.imm) as u64)
            } else {
                (u64::from(x as u32), u64::from(insn.imm as u32))
            };
            let (sa, sk) = if wide {
                (a as i64, k as i64)
            } else {
                (i64::from(a as u32 as i32), i64::from(k as u32 as i32))
            };
            let taken = match insn.opc & alu::MASK {
                jmp::JLT => a < k,
                jmp::JLE => a <= k,
                jmp::JGT => a > k,
                jmp::JGE => a >= k,
                jmp::JSLT => sa < sk,
                jmp::JSLE => sa <= sk,
                jmp::JSGT => sa > sk,
                jmp::JSGE => sa >= sk,
                _ => unreachable!(),
            };
            if taken {
                return (pc as i64 + 1 + i64::from(insn.off)) as usize;
            }
            pc += 1;
        }
        2
    }

    /// Where the fused test sends `x`.
    fn by_the_test(t: &RangeTest, x: u64) -> usize {
        let mask = if t.wide {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if (x & mask).wrapping_sub(t.lo) & mask <= t.span {
            t.inside
        } else {
            t.outside
        }
    }

    fn jump(class: u8, operation: u8, off: i16, imm: i32) -> Insn {
        Insn {
            opc: class | operation | source::K,
            dst: 5,
            src: 0,
            off,
            imm,
        }
    }

    #[test]
    fn every_fused_pair_decides_every_value_as_its_two_jumps_do() {
        let operations = [
            jmp::JLT,
            jmp::JLE,
            jmp::JGT,
            jmp::JGE,
            jmp::JSLT,
            jmp::JSLE,
            jmp::JSGT,
            jmp::JSGE,
        ];
        let constants = [
            0,
            1,
            -1,
            25,
            97,
            122,
            i32::MAX,
            i32::MIN,
            i32::MAX - 1,
            i32::MIN + 1,
        ];
        // Interesting values: around every constant, in both widths, and random ones.
        let mut values: Vec<u64> = Vec::new();
        for &k in &constants {
            for d in -2i64..=2 {
                let v = i64::from(k) + d;
                values.extend([v as u64, u64::from(v as u32), v as u64 ^ (1 << 40)]);
            }
        }
        values.extend([u64::MAX, 1 << 63, (1 << 63) - 1, 1 << 32, (1 << 32) - 1]);
        let mut fused = 0;
        for class in [class::JMP, class::JMP32] {
            for &op1 in &operations {
                for &op2 in &operations {
                    for &k1 in &constants {
                        for &k2 in &constants {
                            // The same target (slot 3), or the first to the second's next
                            // slot (2) and the second elsewhere (3).
                            for off1 in [2, 1] {
                                let insns = [
                                    jump(class, op1, off1, k1),
                                    jump(class, op2, 1, k2),
                                    Insn {
                                        opc: op::EXIT,
                                        dst: 0,
                                        src: 0,
                                        off: 0,
                                        imm: 0,
                                    },
                                ];
                                let Some(t) = fused_range_test(&insns, &[false; 4], 0) else {
                                    continue;
                                };
                                fused += 1;
                                for &x in &values {
                                    assert_eq!(
                                        by_the_test(&t, x),
                                        by_the_jumps(&insns, x),
                                        "{insns:?} x={x:#x} {t:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        // The bounds of C's character classes and every pairing of directions fuse.
        assert!(fused > 2000, "only {fused} pairs fused");
    }

    #[test]
    fn the_character_class_test_of_clang_o1_fuses() {
        // if w5 < 97 goto +3; if w5 > 122 goto +2 (both to slot 4).
        let insns = [
            jump(class::JMP32, jmp::JLT, 3, 97),
            jump(class::JMP32, jmp::JGT, 2, 122),
        ];
        assert_eq!(
            fused_range_test(&insns, &[false; 3], 0),
            Some(RangeTest {
                reg: 5,
                wide: false,
                lo: 97,
                span: 25,
                inside: 2,
                outside: 4,
            })
        );
        // A jump landing on the second compare keeps the two apart.
        assert_eq!(fused_range_test(&insns, &[false, true, false], 0), None);
        // So do different registers, and compares that do not make an interval.
        let mut other = insns;
        other[1].dst = 4;
        assert_eq!(fused_range_test(&other, &[false; 3], 0), None);
        let both_below = [
            jump(class::JMP32, jmp::JLT, 3, 97),
            jump(class::JMP32, jmp::JLT, 2, 122),
        ];
        assert_eq!(fused_range_test(&both_below, &[false; 3], 0), None);
    }
}
