//! Mismatches + history + now → findings. Pure.
