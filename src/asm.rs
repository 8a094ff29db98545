//! (SKELETON) asm
