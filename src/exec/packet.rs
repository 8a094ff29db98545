//! The legacy packet loads (`ldabs*`, `ldind*`: opcodes 0x20–0x38 and 0x40–0x58), engine
//! neutral (`docs/semantics.md`, "Legacy packet loads").
//!
//! Both engines run these instructions through [`load`]: the interpreter calls it inline, the
//! JIT through one `extern "C"` runtime function (they are rare; a call is cheap enough). The
//! packet is whatever [`Regions::packet`] says — the input memory, or an extra region of the
//! run marked with [`crate::exec::memory::MemRegion::as_packet`] (rbpf's mbuff modes; later
//! the skb data of a kernel-style test run) — so a new source of packets needs no engine
//! change.
//!
//! Two flavours, a VM setting ([`PacketLoads`], `Config::packet_loads`):
//!
//! * **Kernel** (the default): the offset is `imm` (ABS) or `src + imm` computed in 32 bits
//!   and read as a signed `int` (IND), as the kernel's `bpf_skb_load_helper_*` take it; the
//!   load reads 1, 2, 4 (or, an rbpf extension the kernel refuses, 8) bytes of the packet in
//!   network byte order and zero-extends them into r0. A negative offset, or one whose bytes
//!   do not all lie in the packet, ends the program at once with r0 = 0: not an error.
//! * **Rbpf** (what `rbpf::EbpfVm*` select): rbpf 0.4's interpreter. The address is
//!   `packet + (imm as u32)` (plus `src`, in 64 bits, for IND); the access is checked like
//!   any load (input memory, stack, extra regions, the bounds callback, … — the run's full
//!   bounds model, so it may fail with the usual out-of-bounds error), and the bytes are read
//!   in host order (little-endian), without a byte swap.

use crate::error::{Access, ExecError};
use crate::exec::memory::Regions;
use crate::isa::{mode, size};

/// Which semantics the legacy packet loads follow (`Config::packet_loads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketLoads {
    /// The Linux kernel's: 32-bit offsets, network byte order, out of bounds ends the program
    /// with r0 = 0. The default of `Vm` and of the C API.
    #[default]
    Kernel,
    /// rbpf 0.4's: 64-bit address arithmetic, host byte order, out of bounds is a
    /// memory-access error. Selected by the rbpf-compatible VMs of [`crate::compat`].
    Rbpf,
}

/// What a packet load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketLoad {
    /// The value to put in r0.
    Value(u64),
    /// The load was out of the packet (kernel flavour): the program ends now, with r0 = 0.
    Abort,
}

/// Runs the packet load `opcode` (one of the eight; see [`crate::isa::is_packet_load`]) with
/// immediate `imm` and, for the IND forms, the source register's value `src`, at slot `pc`.
///
/// Errors only in the rbpf flavour, with the run's usual memory-access errors.
///
/// # Safety
/// `regions` must describe the running execution: its packet and every region it accepts
/// must be readable for the whole run (the engines' contract with their caller), or bounds
/// checking off must mean the embedder accepted raw host accesses (rbpf flavour only; the
/// kernel flavour never reads outside the packet).
#[inline]
pub unsafe fn load(
    regions: &Regions<'_>,
    flavour: PacketLoads,
    opcode: u8,
    imm: i32,
    src: u64,
    pc: usize,
) -> Result<PacketLoad, ExecError> {
    let bytes = size::bytes(opcode);
    let indirect = opcode & mode::MASK == mode::IND;
    let (start, end) = regions.packet();
    match flavour {
        PacketLoads::Kernel => {
            // The kernel's helpers take the offset as an `int`: IND adds in 32 bits.
            let offset = if indirect {
                (src as u32).wrapping_add(imm as u32) as i32
            } else {
                imm
            };
            let Ok(offset) = u64::try_from(offset) else {
                return Ok(PacketLoad::Abort);
            };
            let len = end.saturating_sub(start);
            let fits = offset
                .checked_add(bytes as u64)
                .is_some_and(|last| last <= len);
            if start == 0 || !fits {
                return Ok(PacketLoad::Abort);
            }
            // SAFETY: `[start + offset, start + offset + bytes)` lies inside the packet, which
            // is readable for the whole run (this function's contract).
            let raw = unsafe { crate::exec::memory::load(start.wrapping_add(offset), bytes) };
            Ok(PacketLoad::Value(from_network_order(raw, bytes)))
        }
        PacketLoads::Rbpf => {
            let mut addr = start.wrapping_add(u64::from(imm as u32));
            if indirect {
                addr = addr.wrapping_add(src);
            }
            let addr = regions.check(addr, 0, bytes, Access::Load, pc)?;
            // SAFETY: the run's bounds model accepted the access (or bounds checking is off,
            // raw mode: this function's contract).
            Ok(PacketLoad::Value(unsafe {
                crate::exec::memory::load(addr, bytes)
            }))
        }
    }
}

/// `raw`, read in host order from `bytes` bytes of memory, as the big-endian number those
/// bytes hold.
fn from_network_order(raw: u64, bytes: usize) -> u64 {
    match bytes {
        1 => raw,
        2 => u64::from(u16::from_be(raw as u16)),
        4 => u64::from(u32::from_be(raw as u32)),
        _ => u64::from_be(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::machine::Machine;
    use crate::exec::memory::MemRegion;
    use crate::isa::Insn;
    use crate::program::Program;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    fn program() -> Program {
        Program {
            insns: vec![Insn::new(0x95, 0, 0, 0, 0)],
            functions: Vec::new(),
            stack_reach: 0,
            calls_helpers: false,
            data_sections: Vec::new(),
        }
    }

    const PACKET: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

    /// The load `opcode` over `PACKET` as the input memory.
    fn run(flavour: PacketLoads, opcode: u8, imm: i32, src: u64) -> Result<PacketLoad, ExecError> {
        let vm = Machine::default();
        let prog = program();
        let mut mem = PACKET;
        // No stack: an rbpf-flavour load just past the packet must not land in it.
        let regions = Regions::new(&vm, &prog, mem.as_mut_ptr(), 8, core::ptr::null(), 0);
        // SAFETY: the regions are this function's live buffer.
        unsafe { load(&regions, flavour, opcode, imm, src, 3) }
    }

    #[test]
    fn kernel_flavour_reads_network_order_and_aborts_outside() {
        use PacketLoad::{Abort, Value};
        let k = PacketLoads::Kernel;
        assert_eq!(run(k, 0x30, 7, 0), Ok(Value(0x88)));
        assert_eq!(run(k, 0x28, 6, 0), Ok(Value(0x7788)));
        assert_eq!(run(k, 0x20, 4, 0), Ok(Value(0x5566_7788)));
        assert_eq!(run(k, 0x38, 0, 0), Ok(Value(0x1122_3344_5566_7788)));
        // One byte past the end, and negative offsets.
        assert_eq!(run(k, 0x30, 8, 0), Ok(Abort));
        assert_eq!(run(k, 0x28, 7, 0), Ok(Abort));
        assert_eq!(run(k, 0x38, 1, 0), Ok(Abort));
        assert_eq!(run(k, 0x30, -1, 0), Ok(Abort));
        assert_eq!(run(k, 0x20, i32::MAX, 0), Ok(Abort));
        // IND: src + imm in 32 bits, then signed.
        assert_eq!(run(k, 0x50, -2, 3), Ok(Value(0x22)));
        assert_eq!(run(k, 0x50, 2, 0xffff_ffff), Ok(Value(0x22)));
        assert_eq!(run(k, 0x50, 0, 0x1_0000_0002), Ok(Value(0x33)));
        assert_eq!(run(k, 0x50, 0, 0xffff_ffff), Ok(Abort));
        assert_eq!(run(k, 0x48, 1, 0x8000_0000), Ok(Abort));
        assert_eq!(run(k, 0x58, 0, 0), Ok(Value(0x1122_3344_5566_7788)));
    }

    #[test]
    fn rbpf_flavour_reads_host_order_and_faults_outside() {
        let r = PacketLoads::Rbpf;
        assert_eq!(run(r, 0x28, 6, 0), Ok(PacketLoad::Value(0x8877)));
        assert_eq!(run(r, 0x20, 0, 0), Ok(PacketLoad::Value(0x4433_2211)));
        assert_eq!(run(r, 0x50, 1, 6), Ok(PacketLoad::Value(0x88)));
        assert!(matches!(
            run(r, 0x30, 8, 0),
            Err(ExecError::OutOfBounds { pc: 3, size: 1, .. })
        ));
        // A negative immediate is a large unsigned offset in rbpf.
        assert!(matches!(
            run(r, 0x30, -1, 0),
            Err(ExecError::OutOfBounds { .. })
        ));
        assert!(run(r, 0x38, 1, 0).is_err());
    }

    #[test]
    fn a_marked_extra_region_is_the_packet_and_no_packet_aborts() {
        let vm = Machine::default();
        let prog = program();
        let pkt = [0xab, 0xcd];
        let extra = [MemRegion::read_only(&pkt).as_packet()];
        let regions = Regions::new(&vm, &prog, core::ptr::null_mut(), 0, core::ptr::null(), 0);
        // SAFETY: no packet at all: nothing is read.
        let none = unsafe { load(&regions, PacketLoads::Kernel, 0x30, 0, 0, 0) };
        assert_eq!(none, Ok(PacketLoad::Abort));
        let regions = regions.with_extra(&extra);
        // SAFETY: the packet is `pkt`, alive here.
        let got = unsafe { load(&regions, PacketLoads::Kernel, 0x28, 0, 0, 0) };
        assert_eq!(got, Ok(PacketLoad::Value(0xabcd)));
        // SAFETY: as above.
        let got = unsafe { load(&regions, PacketLoads::Rbpf, 0x28, 0, 0, 0) };
        assert_eq!(got, Ok(PacketLoad::Value(0xcdab)));
    }
}
