//! (SKELETON) insn_builder
