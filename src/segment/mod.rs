//! Segment Public API: the read surface scimwatch needs (and, later, the few writes
//! enforce mode makes).
//!
//! - `wire.rs`: the vendor's JSON shapes (private to this module; unknown fields ignored).
//! - `client.rs`: auth, envelopes, typed errors, cursor pagination, rate limits.
//! - `audit.rs`: what an audit event is about, decided on our side (pure).
//!
//! Contract: [`read_workspace`](client::SegmentClient::read_workspace) returns a complete
//! [`WorkspaceSnapshot`](crate::model::WorkspaceSnapshot) or an error; never a partial one.

pub mod audit;
pub mod client;
mod policy;
mod wire;

pub use client::{SegmentClient, SegmentError};
