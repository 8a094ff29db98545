//! The packet of the kernel-style run in progress on this thread: the buffer an XDP or skb
//! test run lays the frame out in (headroom, frame, tailroom), where the frame lies in it,
//! and what the program asked for that has no meaning inside the run itself (a redirect).
//!
//! A test run ([`crate::kernel`]'s test-run driver) makes a [`PacketRun`] and enters it for
//! the duration of the program's run; the packet helpers (`xdp_adjust_head`,
//! `skb_load_bytes`, `redirect`, …) find it with `with_packet`. A helper called outside a
//! packet run gets `None` and fails as the kernel's would for a bad argument.

use std::cell::Cell;

use crate::kernel::context::{ContextKind, sk_buff};

/// The kind of context a packet run converts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// `struct xdp_md`.
    Xdp,
    /// `struct __sk_buff`.
    Skb,
}

/// Where a program asked its packet to go (`bpf_redirect`, `bpf_redirect_map`). No device
/// exists in user space: the run records the choice for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    /// `bpf_redirect(ifindex, flags)`, or a DEVMAP/DEVMAP_HASH entry: a device by index.
    Ifindex {
        /// The interface index.
        ifindex: u32,
        /// The helper's flags (`BPF_F_INGRESS`, …).
        flags: u64,
    },
    /// A CPUMAP entry: the CPU the frame goes to.
    Cpu {
        /// The CPU number.
        cpu: u32,
    },
    /// An XSKMAP entry: the AF_XDP socket of a receive queue.
    Queue {
        /// The queue index (the map key).
        queue: u32,
    },
}

/// One packet run: the buffer and the frame's place in it.
#[derive(Debug)]
pub struct PacketRun {
    /// The start of the whole buffer (headroom, frame, tailroom), owned by the test run.
    pub buf: *mut u8,
    /// The buffer's length.
    pub buf_len: usize,
    /// Offset of the metadata area (equal to `data` when there is none).
    pub data_meta: usize,
    /// Offset of the frame's first byte.
    pub data: usize,
    /// Offset one past the frame's last byte.
    pub data_end: usize,
    /// The kind of context.
    pub kind: PacketKind,
    /// The converted context the program runs with, whose packet pointers follow `data`,
    /// `data_end` and `data_meta` when a helper moves them.
    pub ctx: *mut u8,
    /// The redirect the program asked for, if any.
    pub redirect: Option<Redirect>,
}

impl PacketKind {
    /// The context layout of this kind.
    pub fn context(self) -> ContextKind {
        match self {
            PacketKind::Xdp => ContextKind::Xdp,
            PacketKind::Skb => ContextKind::Skb,
        }
    }
}

impl PacketRun {
    /// The frame's length (`data_end - data`).
    pub fn len(&self) -> usize {
        self.data_end.saturating_sub(self.data)
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address of byte `off` of the buffer.
    pub fn addr(&self, off: usize) -> u64 {
        (self.buf as u64).wrapping_add(off as u64)
    }

    /// The buffer offset of `addr` and whether `[addr, addr + len)` lies inside the buffer.
    pub fn offset_of(&self, addr: u64, len: usize) -> Option<usize> {
        let off = usize::try_from(addr.checked_sub(self.buf as u64)?).ok()?;
        (off.checked_add(len)? <= self.buf_len).then_some(off)
    }

    /// The buffer bytes `[from, to)`, if inside the buffer.
    pub(crate) fn bytes_mut(&mut self, from: usize, to: usize) -> Option<&mut [u8]> {
        if from > to || to > self.buf_len || self.buf.is_null() {
            return None;
        }
        // SAFETY: a `PacketRun` entered with `PacketGuard::enter` describes a buffer valid
        // for `buf_len` bytes that the test run owns for the run, and `[from, to)` lies in
        // it; no other reference to the buffer is live while a helper runs.
        Some(unsafe { std::slice::from_raw_parts_mut(self.buf.wrapping_add(from), to - from) })
    }

    /// Writes the packet pointers (and, for skb contexts, `len`) into the context after
    /// `data`, `data_end` or `data_meta` moved, so the program sees the new frame.
    pub(crate) fn sync_ctx(&mut self) {
        if self.ctx.is_null() {
            return;
        }
        let kind = self.kind.context();
        let put = |at: usize, bytes: &[u8]| {
            // SAFETY: `ctx` points to the converted context of this run, valid for
            // `kind.buffer_size()` bytes (every field written here lies inside it), owned
            // by the test run and not borrowed while a helper runs.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(self.ctx.wrapping_add(at), bytes.len()) };
            dst.copy_from_slice(bytes);
        };
        put(kind.data_ptr(), &self.addr(self.data).to_le_bytes());
        put(kind.data_end_ptr(), &self.addr(self.data_end).to_le_bytes());
        put(
            kind.data_meta_ptr(),
            &self.addr(self.data_meta).to_le_bytes(),
        );
        if self.kind == PacketKind::Skb {
            let len = u32::try_from(self.len()).unwrap_or(u32::MAX);
            put(sk_buff::LEN, &len.to_le_bytes());
        }
    }
}

thread_local! {
    /// The packet run in progress on this thread (null outside one).
    static CURRENT: Cell<*mut PacketRun> = const { Cell::new(std::ptr::null_mut()) };
}

/// Makes `run` the packet of this thread until the guard drops (the enclosing one, if any,
/// comes back then).
pub(crate) struct PacketGuard {
    previous: *mut PacketRun,
}

impl PacketGuard {
    /// Enters `run`, which must outlive the guard and not move while it lives.
    pub(crate) fn enter(run: &mut PacketRun) -> Self {
        PacketGuard {
            previous: CURRENT.replace(run),
        }
    }
}

impl Drop for PacketGuard {
    fn drop(&mut self) {
        CURRENT.set(self.previous);
    }
}

/// Calls `f` with the packet run in progress on this thread, if there is one.
pub(crate) fn with_packet<R>(f: impl FnOnce(&mut PacketRun) -> R) -> Option<R> {
    let run = CURRENT.get();
    // SAFETY: a non-null pointer was set by a live `PacketGuard` over a `PacketRun` that
    // outlives it, on this thread; helpers run synchronously inside that run, and nothing
    // else holds a reference to it while a helper does.
    let run = unsafe { run.as_mut() }?;
    Some(f(run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_packet_is_seen_only_inside_its_guard() {
        assert!(with_packet(|_| ()).is_none());
        let mut buf = [0u8; 64];
        let mut run = PacketRun {
            buf: buf.as_mut_ptr(),
            buf_len: buf.len(),
            data_meta: 16,
            data: 16,
            data_end: 40,
            kind: PacketKind::Xdp,
            ctx: std::ptr::null_mut(),
            redirect: None,
        };
        {
            let _guard = PacketGuard::enter(&mut run);
            with_packet(|p| p.redirect = Some(Redirect::Cpu { cpu: 3 }));
            assert_eq!(with_packet(|p| p.data_end - p.data), Some(24));
        }
        assert!(with_packet(|_| ()).is_none());
        assert_eq!(run.redirect, Some(Redirect::Cpu { cpu: 3 }));
    }
}
