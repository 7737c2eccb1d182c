//! How Segment talks about rate limits (reference/segment.md §4), for `crate::http`.
//!
//! - On a 429: wait `Retry-After` (whole seconds) when present, else the body's
//!   `errors[0].data.msBeforeNext` (milliseconds), else `X-RateLimit-Reset` (an RFC 5322
//!   date) minus now; with none of them `crate::http` falls back to exponential backoff.
//! - After any answer: when `X-RateLimit-Remaining` is low (≤ [`LOW_REMAINING`]), hold the
//!   next request until `X-RateLimit-Reset`.
//!
//! Never: retry or sleep here (that is `crate::http`'s job), or trust a hint without the
//! cap `crate::http` applies (`RetryConfig::max_hint`).

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::http::{header_date, header_min_u64, retry_after_header, ServicePolicy};

/// At or below this many remaining requests, pause until the window resets.
pub const LOW_REMAINING: u64 = 5;

#[derive(Debug, Default, Clone, Copy)]
pub struct SegmentPolicy;

impl SegmentPolicy {
    /// `errors[0].data.msBeforeNext` from a 429 body, when it is there.
    fn ms_before_next(body: &[u8]) -> Option<Duration> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let ms = v
            .get("errors")?
            .as_array()?
            .iter()
            .find_map(|e| e.get("data")?.get("msBeforeNext")?.as_f64())?;
        (ms.is_finite() && ms >= 0.0).then(|| Duration::from_millis(ms.ceil() as u64))
    }

    /// `X-RateLimit-Reset` minus now (zero when the reset is already past).
    fn until_reset(headers: &HeaderMap) -> Option<Duration> {
        let reset = header_date(headers, "x-ratelimit-reset")?;
        Some(
            reset
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

impl ServicePolicy for SegmentPolicy {
    fn retry_after(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Duration> {
        if status != StatusCode::TOO_MANY_REQUESTS {
            return retry_after_header(headers);
        }
        retry_after_header(headers)
            .or_else(|| Self::ms_before_next(body))
            .or_else(|| Self::until_reset(headers))
    }

    /// The window's whole budget is consumed + remaining (Segment sends no limit header);
    /// Segment counts per minute. We allow ourselves 90 % of it.
    fn budget_per_minute(&self, headers: &HeaderMap) -> Option<u32> {
        let consumed = header_min_u64(headers, "x-ratelimit-consumed")?;
        let remaining = header_min_u64(headers, "x-ratelimit-remaining")?;
        let total = consumed.saturating_add(remaining);
        (total > 0).then(|| u32::try_from((total * 9 / 10).max(1)).unwrap_or(u32::MAX))
    }

    fn pause_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let remaining = header_min_u64(headers, "x-ratelimit-remaining")?;
        if remaining > LOW_REMAINING {
            return None;
        }
        Self::until_reset(headers).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const BODY: &[u8] = br#"{"errors":[{"type":"RequestError","message":"Too many requests",
        "data":{"remainingPoints":0,"msBeforeNext":1500,"consumedPoints":21}}]}"#;

    #[test]
    fn retry_after_header_wins_over_body() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        let d = SegmentPolicy.retry_after(StatusCode::TOO_MANY_REQUESTS, &h, BODY);
        assert_eq!(d, Some(Duration::from_secs(2)));
    }

    #[test]
    fn ms_before_next_from_body() {
        let d = SegmentPolicy.retry_after(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), BODY);
        assert_eq!(d, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn reset_date_when_nothing_else() {
        let mut h = HeaderMap::new();
        let at = SystemTime::now() + Duration::from_secs(30);
        let v = HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap();
        h.insert("x-ratelimit-reset", v);
        let d = SegmentPolicy
            .retry_after(StatusCode::TOO_MANY_REQUESTS, &h, b"{}")
            .unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            SegmentPolicy.retry_after(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b"x"),
            None
        );
    }

    #[test]
    fn pause_only_when_remaining_is_low() {
        let at = SystemTime::now() + Duration::from_secs(10);
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap(),
        );
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("100"));
        assert_eq!(SegmentPolicy.pause_after(&h), None);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("3"));
        let d = SegmentPolicy.pause_after(&h).unwrap();
        assert!(d > Duration::from_secs(5), "{d:?}");
    }
}
