//! Segment Public API JSON shapes.
