//! The narrated demo.
