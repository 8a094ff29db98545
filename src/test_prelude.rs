//! The standard names every unit test module uses (`Vec`, `String`, `format!`, …).
//!
//! With the `std` feature they come from the standard prelude; in the no_std configuration
//! the crate's unit tests still link `std` (see `lib.rs`), and this module brings the same
//! names in, so each test module starts with one `use crate::test_prelude::*;`.

#[cfg(not(feature = "std"))]
pub(crate) use std::{
    borrow::ToOwned,
    boxed::Box,
    format,
    string::{String, ToString},
    vec,
    vec::Vec,
};

/// The decoded slots of an assembly text (what the recognisers' unit tests start from).
pub(crate) fn assembled(text: &str) -> Vec<crate::isa::Insn> {
    let bytes = crate::tools::asm::assemble_bytes(text).expect("assembles");
    crate::isa::decode_slots(&bytes).expect("whole slots")
}
