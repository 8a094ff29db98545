//! (SKELETON) interpreter
