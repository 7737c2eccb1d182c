//! How Okta talks about rate limits (reference/okta.md §4), for `crate::http`.
//!
//! Contract:
//! - A 429 waits `X-Rate-Limit-Reset − Date + 1 s`, measured against the server's `Date`
//!   (never our clock, which may be skewed); without a reset header the shared layer
//!   falls back to backoff.
//! - After every answer whose `X-Rate-Limit-Remaining` is low (≤ 10 % of the limit, or 0)
//!   the next request is held back by `(reset − Date) / max(remaining, 1)`, so the budget
//!   lasts until the window resets.
//! - When a header appears several times, the most restrictive value wins: the smallest
//!   limit and remaining, the latest reset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::http::{header_date, header_min_u64, ServicePolicy};

const LIMIT: &str = "x-rate-limit-limit";
const REMAINING: &str = "x-rate-limit-remaining";
const RESET: &str = "x-rate-limit-reset";

/// Okta's `X-Rate-Limit-*` policy.
#[derive(Debug, Default, Clone, Copy)]
pub struct OktaPolicy;

impl OktaPolicy {
    /// Seconds from the server's `Date` (our clock when absent) until the window resets.
    fn until_reset(headers: &HeaderMap) -> Option<Duration> {
        let reset = header_max_u64(headers, RESET)?;
        let now = header_date(headers, "date").unwrap_or_else(SystemTime::now);
        let now_secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(Duration::from_secs(reset.saturating_sub(now_secs)))
    }
}

impl ServicePolicy for OktaPolicy {
    fn retry_after(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        _body: &[u8],
    ) -> Option<Duration> {
        if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        Self::until_reset(headers).map(|d| d + Duration::from_secs(1))
    }

    /// Half of the bucket the headers report: Okta lets one token or app use 50 % of a
    /// bucket by default, and other integrations draw from the same buckets.
    fn budget_per_minute(&self, headers: &HeaderMap) -> Option<u32> {
        let limit = header_min_u64(headers, LIMIT).filter(|l| *l > 0)?;
        u32::try_from((limit / 2).max(1)).ok()
    }

    fn pause_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let limit = header_min_u64(headers, LIMIT)?;
        let remaining = header_min_u64(headers, REMAINING)?;
        let low = remaining == 0 || remaining.saturating_mul(10) <= limit;
        if !low {
            return None;
        }
        let until_reset = Self::until_reset(headers)?;
        let share = until_reset / u32::try_from(remaining.max(1)).unwrap_or(u32::MAX);
        (!share.is_zero()).then_some(share)
    }
}

/// The largest integer among a header's values (the latest reset is the most
/// restrictive).
fn header_max_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    crate::http::header_u64s(headers, name).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn retry_after_is_measured_against_the_server_date() {
        // Date is 2023-11-14T22:13:20Z = 1700000000; reset 30 s later.
        let h = headers(&[
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            (RESET, "1700000030"),
            (RESET, "1700000010"),
        ]);
        let wait = OktaPolicy.retry_after(StatusCode::TOO_MANY_REQUESTS, &h, b"");
        assert_eq!(wait, Some(Duration::from_secs(31)));
    }

    #[test]
    fn retry_after_without_reset_falls_back() {
        let h = headers(&[("date", "Tue, 14 Nov 2023 22:13:20 GMT")]);
        assert_eq!(
            OktaPolicy.retry_after(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            None
        );
    }

    #[test]
    fn low_budget_spreads_until_reset() {
        let h = headers(&[
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            (LIMIT, "600"),
            (REMAINING, "50"),
            (REMAINING, "10"),
            (RESET, "1700000040"),
        ]);
        assert_eq!(OktaPolicy.pause_after(&h), Some(Duration::from_secs(4)));
        let plenty = headers(&[
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            (LIMIT, "600"),
            (REMAINING, "500"),
            (RESET, "1700000040"),
        ]);
        assert_eq!(OktaPolicy.pause_after(&plenty), None);
        let none_left = headers(&[
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            (LIMIT, "0"),
            (REMAINING, "0"),
            (RESET, "1700000003"),
        ]);
        assert_eq!(
            OktaPolicy.pause_after(&none_left),
            Some(Duration::from_secs(3))
        );
    }
}
