//! Desired vs actual → mismatches. Pure.
