//! (SKELETON) disasm
