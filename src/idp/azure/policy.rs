//! How Graph talks about throttling (reference/graph.md §5), for `crate::http`.
//!
//! - A 429, 503 or 504 waits `Retry-After` (seconds, or an HTTP date) when the answer
//!   carries it; without it `crate::http` falls back to backoff.
//! - `x-ms-throttle-limit-percentage` appears once the app has used more than 80 % of its
//!   resource-unit budget for the 10 s window: from then on each next request is held back
//!   in proportion (up to 1 s at 100 %), so the bucket refills instead of running dry.
//!
//! Never: retry or sleep here.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::http::{header_min_u64, retry_after_header, ServicePolicy};

const THROTTLE_PERCENT: &str = "x-ms-throttle-limit-percentage";

#[derive(Debug, Default, Clone, Copy)]
pub struct GraphPolicy;

impl ServicePolicy for GraphPolicy {
    fn retry_after(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        _body: &[u8],
    ) -> Option<Duration> {
        match status.as_u16() {
            429 | 503 | 504 => retry_after_header(headers),
            _ => None,
        }
    }

    fn pause_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let pct = header_min_u64(headers, THROTTLE_PERCENT)?;
        if pct <= 80 {
            return None;
        }
        // 81 % → 50 ms … 100 % → 1 s.
        let over = pct.min(100) - 80;
        Some(Duration::from_millis(over * 50))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_on_429_503_504_only() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        for s in [429, 503, 504] {
            let st = StatusCode::from_u16(s).unwrap();
            assert_eq!(
                GraphPolicy.retry_after(st, &h, b""),
                Some(Duration::from_secs(7))
            );
        }
        assert_eq!(
            GraphPolicy.retry_after(StatusCode::INTERNAL_SERVER_ERROR, &h, b""),
            None
        );
    }

    #[test]
    fn pauses_past_80_percent() {
        let mut h = HeaderMap::new();
        assert_eq!(GraphPolicy.pause_after(&h), None);
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("90"));
        assert_eq!(
            GraphPolicy.pause_after(&h),
            Some(Duration::from_millis(500))
        );
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("70"));
        assert_eq!(GraphPolicy.pause_after(&h), None);
    }
}
