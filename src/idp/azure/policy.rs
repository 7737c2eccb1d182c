//! How Graph talks about throttling (reference/graph.md §5), for `crate::http`.
//!
//! - A 429, 503 or 504 waits `Retry-After` (seconds, or an HTTP date) when the answer
//!   carries it; without it `crate::http` falls back to backoff.
//! - `x-ms-throttle-limit-percentage` appears once the app has used more than 80 % of its
//!   resource-unit budget for the 10 s window. Graph sends it as a **fraction** of the
//!   limit, from 0.8 to 1.8 (Microsoft Graph throttling guidance, "Regular responses
//!   requests" in the identity and access limits), e.g. `0.85`; a whole number above 2 is
//!   read as a percentage, in case a proxy rewrites it. From then on each next request is
//!   held back in proportion (up to 1 s at the full budget), so the bucket refills.
//!
//! Never: retry or sleep here.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::http::{retry_after_header, ServicePolicy};

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
        let used = usage_fraction(headers)?;
        if used <= 0.8 {
            return None;
        }
        // 0.81 → 50 ms … 1.0 (and above) → 1 s.
        let over = used.min(1.0) - 0.8;
        Some(Duration::from_millis((over * 5000.0).round() as u64))
    }
}

/// The highest usage among the header's values, as a fraction of the limit (`0.85`);
/// values above 2 are percentages (`85`). Unparseable values are ignored.
fn usage_fraction(headers: &HeaderMap) -> Option<f64> {
    headers
        .get_all(THROTTLE_PERCENT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|s| s.trim().trim_end_matches('%').trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| if v > 2.0 { v / 100.0 } else { v })
        .reduce(f64::max)
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
    fn pauses_past_80_percent_of_the_budget_given_as_a_fraction() {
        let mut h = HeaderMap::new();
        assert_eq!(GraphPolicy.pause_after(&h), None);
        // What Graph sends: a fraction of the limit, 0.8 to 1.8.
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("0.9"));
        assert_eq!(
            GraphPolicy.pause_after(&h),
            Some(Duration::from_millis(500))
        );
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("0.85"));
        assert_eq!(
            GraphPolicy.pause_after(&h),
            Some(Duration::from_millis(250))
        );
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("1.8"));
        assert_eq!(GraphPolicy.pause_after(&h), Some(Duration::from_secs(1)));
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("0.8"));
        assert_eq!(GraphPolicy.pause_after(&h), None);
        // A whole percentage (a rewriting proxy) still reads right; junk is ignored.
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("90"));
        assert_eq!(
            GraphPolicy.pause_after(&h),
            Some(Duration::from_millis(500))
        );
        h.insert(THROTTLE_PERCENT, HeaderValue::from_static("lots"));
        assert_eq!(GraphPolicy.pause_after(&h), None);
    }
}
