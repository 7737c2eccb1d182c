//! One pass: read everything, then resolve, diff, classify.
