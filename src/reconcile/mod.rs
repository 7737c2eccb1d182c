//! One reconcile pass: read, resolve, diff, classify.

pub mod classify;
pub mod diff;
pub mod finding;
pub mod pass;

pub use finding::{Attribution, AttributionKind, Finding, Kind, Severity, State, Subject};
