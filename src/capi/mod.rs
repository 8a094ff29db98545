//! The C API (SKELETON: implemented by the C API work).
