//! (SKELETON) memory
