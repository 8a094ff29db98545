//! (SKELETON) elf
