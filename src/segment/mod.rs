//! Segment Public API: the read surface scimwatch needs (and, later, the few writes
//! enforce mode makes).
//!
//! - `wire.rs`: the vendor's JSON shapes (private to this module; unknown fields ignored).
//! - `client.rs`: auth, envelopes, cursor pagination, rate limits, the permission writes.
//! - `error.rs`: [`SegmentError`] and how an error answer becomes its message.
//! - `audit.rs`: what an audit event is about, decided on our side (pure).
//!
//! Contract: [`read_workspace`](client::SegmentClient::read_workspace) returns a complete
//! [`WorkspaceSnapshot`](crate::model::WorkspaceSnapshot) or an error; never a partial one.

pub mod audit;
pub mod client;
mod error;
mod policy;
mod wire;

pub use client::SegmentClient;
pub use error::SegmentError;
