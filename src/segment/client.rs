//! Segment Public API client.

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {}

pub struct SegmentClient {}
