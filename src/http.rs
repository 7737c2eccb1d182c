//! The one place that retries and paces HTTP requests (STYLE.md habit 5).
//!
//! Why one file (~600 lines): retry, pacing and the request counts are one send path;
//! split, the order in which a 429 hint, the pacing and the backoff apply would sit apart.
//!
//! Every client (Okta, Graph, Segment) sends through an [`Http`] built with a
//! [`ServicePolicy`] that knows how its service talks about limits:
//! - *pacing*: a governor rate limiter (a steady budget) plus a pause the policy derives
//!   from the rate-limit headers of each answer (the remaining budget spread until reset);
//! - *429*: wait what the server says (`Retry-After`, `X-Rate-Limit-Reset` against `Date`,
//!   `msBeforeNext`, ...), then try again;
//! - *5xx, timeouts, connection errors*: exponential backoff with jitter (backon); a 503 or
//!   504 that carries `Retry-After` (as Graph sends) waits at least that long before its
//!   next attempt (capped by `max_hint`), within the same retry count.
//!
//! Contract: [`Http::send`] returns the final answer whatever its status (the caller maps
//! 4xx and exhausted 5xx into its typed errors) and fails only when no answer came at all.
//! Nothing above this module loops on errors. Request counts per service, endpoint and
//! status are kept in [`RequestStats`] for the benchmark and metrics.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// What a service's answers say about waiting. One impl per service.
pub trait ServicePolicy: Send + Sync + 'static {
    /// For a 429 (or 503): how long the server asks us to wait, if it says.
    fn retry_after(&self, status: StatusCode, headers: &HeaderMap, body: &[u8])
        -> Option<Duration>;
    /// After any answer: how long to hold the *next* request back so as not to run the
    /// budget dry (for example, the remaining requests spread until the window resets).
    fn pause_after(&self, headers: &HeaderMap) -> Option<Duration>;
    /// The steady per-minute budget this answer's rate-limit headers grant the request's
    /// bucket, already scaled to the share we allow ourselves. The client paces each
    /// endpoint with a governor limiter at that rate, rebuilt when the figure changes.
    fn budget_per_minute(&self, _headers: &HeaderMap) -> Option<u32> {
        None
    }
}

/// A finished exchange: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    /// The final URL (after redirects), for error messages.
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer at all after the retries (connection refused, DNS, timeout, TLS).
    #[error(
        "no answer from {} after {attempts} attempts",
        crate::redact::mask(url)
    )]
    Transport {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
}

impl HttpError {
    pub fn url(&self) -> &str {
        match self {
            HttpError::Transport { url, .. } => url,
        }
    }
}

/// Retry knobs. Defaults suit production; tests shrink them.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    /// Retries after the first attempt, for 5xx and transport errors.
    pub max_retries: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Retries of 429 answers (each waits what the server said).
    pub max_rate_limited: usize,
    /// A server hint longer than this is capped (a bad clock must not stall us for hours).
    pub max_hint: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_rate_limited: 8,
            max_hint: Duration::from_secs(120),
            timeout: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// Fast retries for tests against local servers.
    pub fn fast() -> Self {
        RetryConfig {
            max_retries: 3,
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_rate_limited: 5,
            max_hint: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Someone watching the requests as they happen: the progress display of one-shot
/// commands (`crate::progress`). Called from the request path, so it must not block.
pub trait Observer: Send + Sync {
    /// One request to `service` was answered (or got no answer).
    fn request(&self, service: &str);
    /// `service` is about to wait `wait` for its rate limit.
    fn waiting(&self, service: &str, wait: Duration);
    /// The read now expects `n` more requests to `service` (an estimate: it learns how
    /// many users and groups there are as it goes).
    fn expect_requests(&self, service: &str, n: u64);
}

#[derive(Default, Clone)]
struct Observed(Option<Arc<dyn Observer>>);

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Observed" } else { "None" })
    }
}

/// Requests sent, by (service, endpoint, status). Status 0 means "no answer".
#[derive(Default, Debug)]
pub struct RequestStats {
    counts: Mutex<BTreeMap<(String, String, u16), u64>>,
    waited: Mutex<Duration>,
    observer: Mutex<Observed>,
}

impl RequestStats {
    pub fn new() -> Arc<RequestStats> {
        Arc::new(RequestStats::default())
    }
    /// Tells `observer` about every request and rate-limit wait from now on.
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        if let Ok(mut o) = self.observer.lock() {
            *o = Observed(Some(observer));
        }
    }
    fn observer(&self) -> Option<Arc<dyn Observer>> {
        self.observer.lock().ok().and_then(|o| o.0.clone())
    }
    /// A client announces `n` more requests to `service` (for the progress display).
    pub fn expect_requests(&self, service: &str, n: u64) {
        if let Some(o) = self.observer() {
            o.expect_requests(service, n);
        }
    }
    fn record(&self, service: &str, endpoint: &str, status: u16) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((service.to_string(), endpoint.to_string(), status))
                .or_default() += 1;
        }
        if let Some(o) = self.observer() {
            o.request(service);
        }
    }
    fn announce_wait(&self, service: &str, wait: Duration) {
        if let Some(o) = self.observer() {
            o.waiting(service, wait);
        }
    }
    fn add_wait(&self, d: Duration) {
        if let Ok(mut w) = self.waited.lock() {
            *w += d;
        }
    }
    /// Every (service, endpoint, status) with its count.
    pub fn snapshot(&self) -> BTreeMap<(String, String, u16), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
    /// Total requests per service.
    pub fn by_service(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((svc, _, _), n) in self.snapshot() {
            *out.entry(svc).or_default() += n;
        }
        out
    }
    /// Total requests per (service, endpoint).
    pub fn by_endpoint(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for ((svc, ep, _), n) in self.snapshot() {
            *out.entry((svc, ep)).or_default() += n;
        }
        out
    }
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
    /// Time spent waiting on rate limits (pacing pauses and 429 hints).
    pub fn waited(&self) -> Duration {
        self.waited.lock().map(|w| *w).unwrap_or_default()
    }
}

/// A budget an endpoint's answers announced (requests per minute) and its limiter.
type Budget = (u32, Arc<DefaultDirectRateLimiter>);

/// A paced, retrying HTTP client for one service (one Okta org, one Segment workspace).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    service: &'static str,
    policy: Arc<dyn ServicePolicy>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Per endpoint: the budget its last answer announced, and a limiter at that rate.
    budgets: Arc<Mutex<HashMap<String, Budget>>>,
    hold_until: Arc<Mutex<Option<Instant>>>,
    /// Keep URLs out of logs and errors (see [`Http::hiding_urls`]).
    hide_urls: bool,
    retry: RetryConfig,
    stats: Arc<RequestStats>,
}

/// One request to make: built afresh for every attempt (bodies and per-request auth
/// headers, such as a DPoP proof, must be new each time).
pub type BuildRequest<'a> = dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'a;

enum Attempt {
    /// Retry after the server's hint (429).
    RateLimited(Option<Duration>, Answer),
    /// Retry with backoff (5xx).
    ServerError(Answer),
    Transport(reqwest::Error, String),
}

impl Attempt {
    fn is_rate_limited(&self) -> bool {
        matches!(self, Attempt::RateLimited(..))
    }
}

impl Http {
    /// `per_minute`: the steady request budget this client allows itself (None: only the
    /// header-driven pacing).
    pub fn new(
        service: &'static str,
        policy: Arc<dyn ServicePolicy>,
        per_minute: Option<u32>,
        retry: RetryConfig,
        stats: Arc<RequestStats>,
    ) -> Http {
        let limiter = per_minute.and_then(NonZeroU32::new).map(|n| {
            // Allow a small burst so that a pass does not start with a stall.
            let burst = NonZeroU32::new((n.get() / 10).max(1)).unwrap_or(NonZeroU32::MIN);
            Arc::new(RateLimiter::direct(Quota::per_minute(n).allow_burst(burst)))
        });
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("scimwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Http {
            client,
            service,
            policy,
            limiter,
            budgets: Arc::new(Mutex::new(HashMap::new())),
            hold_until: Arc::new(Mutex::new(None)),
            hide_urls: false,
            retry,
            stats,
        }
    }

    /// Paces to `per_minute` with no burst at all (alert sinks: Slack allows one message a
    /// second).
    pub fn strictly_paced(mut self, per_minute: u32) -> Http {
        if let Some(n) = NonZeroU32::new(per_minute) {
            self.limiter = Some(Arc::new(RateLimiter::direct(
                Quota::per_minute(n).allow_burst(NonZeroU32::MIN),
            )));
        }
        self
    }

    /// The URL itself is a secret (a Slack webhook): never put it in a log line or error.
    pub fn hiding_urls(mut self) -> Http {
        self.hide_urls = true;
        self
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    pub fn stats(&self) -> &Arc<RequestStats> {
        &self.stats
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `build` until it gets an answer that is not a 429/5xx, or retries run out.
    /// `endpoint` is the request's template ("GET /api/v1/groups/{id}/users") for stats.
    pub async fn send(
        &self,
        endpoint: &str,
        build: &BuildRequest<'_>,
    ) -> Result<Answer, HttpError> {
        let mut rate_limited = 0usize;
        loop {
            let backoff = ExponentialBuilder::default()
                .with_min_delay(self.retry.min_backoff)
                .with_max_delay(self.retry.max_backoff)
                .with_max_times(self.retry.max_retries)
                .with_jitter();
            let result = (|| async { self.attempt(endpoint, build).await })
                .retry(backoff)
                .when(|a: &Attempt| !a.is_rate_limited())
                .adjust(|a: &Attempt, dur| match (a, dur) {
                    // RFC 9110's Retry-After on a 503/504 (Graph sends it), not the
                    // services' own rate-limit headers: Okta's reset on a 503 is the rate
                    // window's, not a hint about the outage.
                    (Attempt::ServerError(ans), Some(d))
                        if matches!(ans.status.as_u16(), 503 | 504) =>
                    {
                        let hint =
                            retry_after_header(&ans.headers).map(|h| h.min(self.retry.max_hint));
                        Some(hint.map_or(d, |h| h.max(d)))
                    }
                    (_, d) => d,
                })
                .notify(|a: &Attempt, dur| match a {
                    Attempt::ServerError(ans) => tracing::warn!(
                        service = self.service, endpoint, status = ans.status.as_u16(),
                        retry_in = ?dur, "Server error, retrying."
                    ),
                    Attempt::Transport(e, url) => tracing::warn!(
                        service = self.service, endpoint, url = %crate::redact::mask(url),
                        error = %crate::redact::mask(&e.to_string()),
                        retry_in = ?dur, "No answer, retrying."
                    ),
                    Attempt::RateLimited(..) => {}
                })
                .await;
            match result {
                Ok(answer) => return Ok(answer),
                Err(Attempt::RateLimited(hint, answer)) => {
                    rate_limited += 1;
                    if rate_limited > self.retry.max_rate_limited {
                        return Ok(answer);
                    }
                    let wait = hint
                        .unwrap_or_else(|| {
                            self.retry.min_backoff * 2u32.pow(rate_limited.min(6) as u32)
                        })
                        .min(self.retry.max_hint);
                    tracing::warn!(
                        service = self.service, endpoint, wait = ?wait,
                        "Rate limited (429), waiting as the server asked."
                    );
                    self.stats.add_wait(wait);
                    self.stats.announce_wait(self.service, wait);
                    tokio::time::sleep(wait).await;
                }
                Err(Attempt::ServerError(answer)) => return Ok(answer),
                Err(Attempt::Transport(source, url)) => {
                    return Err(HttpError::Transport {
                        url,
                        attempts: self.retry.max_retries as u32 + 1,
                        source,
                    })
                }
            }
        }
    }

    async fn attempt(&self, endpoint: &str, build: &BuildRequest<'_>) -> Result<Answer, Attempt> {
        self.pace(endpoint).await;
        let request = build(&self.client);
        let sent = request.send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.stats.record(self.service, endpoint, 0);
                if self.hide_urls {
                    return Err(Attempt::Transport(e.without_url(), "(hidden)".into()));
                }
                let url = e.url().map(|u| redact_url(u.as_str())).unwrap_or_default();
                return Err(Attempt::Transport(e, url));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let url = if self.hide_urls {
            "(hidden)".to_string()
        } else {
            redact_url(response.url().as_str())
        };
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                self.stats.record(self.service, endpoint, 0);
                let e = if self.hide_urls { e.without_url() } else { e };
                return Err(Attempt::Transport(e, url));
            }
        };
        self.stats.record(self.service, endpoint, status.as_u16());
        // Budgets are learned from answers that went through: a 429 says when to retry
        // (below), and error answers may carry no or stale rate-limit headers.
        if status.is_success() {
            if let Some(pause) = self.policy.pause_after(&headers) {
                self.hold_for(pause);
            }
            if let Some(budget) = self.policy.budget_per_minute(&headers) {
                self.set_budget(endpoint, budget);
            }
        }
        let answer = Answer {
            status,
            headers,
            body,
            url,
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            let hint = self
                .policy
                .retry_after(status, &answer.headers, &answer.body);
            return Err(Attempt::RateLimited(hint, answer));
        }
        if matches!(status.as_u16(), 500 | 502 | 503 | 504) {
            return Err(Attempt::ServerError(answer));
        }
        Ok(answer)
    }

    fn hold_for(&self, pause: Duration) {
        let pause = pause.min(self.retry.max_hint);
        if let Ok(mut h) = self.hold_until.lock() {
            let until = Instant::now() + pause;
            if h.is_none_or(|cur| cur < until) {
                *h = Some(until);
            }
        }
    }

    fn set_budget(&self, endpoint: &str, budget: u32) {
        let Some(per_minute) = NonZeroU32::new(budget) else {
            return;
        };
        if let Ok(mut b) = self.budgets.lock() {
            if b.get(endpoint).is_some_and(|(n, _)| *n == budget) {
                return;
            }
            // A second's worth of burst, so that a pass starts at once but never empties
            // the bucket in one go.
            let burst = NonZeroU32::new((budget / 60).max(1)).unwrap_or(NonZeroU32::MIN);
            let limiter = RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst));
            b.insert(endpoint.to_string(), (budget, Arc::new(limiter)));
        }
    }

    async fn pace(&self, endpoint: &str) {
        let budget = self
            .budgets
            .lock()
            .ok()
            .and_then(|b| b.get(endpoint).map(|(_, l)| l.clone()));
        if let Some(limiter) = budget {
            self.wait_for(&limiter).await;
        }
        let hold = self.hold_until.lock().ok().and_then(|h| *h);
        if let Some(until) = hold {
            let now = Instant::now();
            if until > now {
                let wait = until - now;
                self.stats.add_wait(wait);
                self.stats.announce_wait(self.service, wait);
                tokio::time::sleep(wait).await;
            }
        }
        if let Some(limiter) = &self.limiter {
            self.wait_for(limiter).await;
        }
    }

    /// Takes one cell of `limiter`, waiting for it when none is free (and saying how long
    /// to whoever watches). A free cell is taken by `check` itself, as `until_ready` would.
    async fn wait_for(&self, limiter: &DefaultDirectRateLimiter) {
        use governor::clock::Clock as _;
        if let Err(not_until) = limiter.check() {
            let start = Instant::now();
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            self.stats.announce_wait(self.service, wait);
            limiter.until_ready().await;
            self.stats.add_wait(start.elapsed());
        }
    }
}

/// Convenience for simple GETs with a bearer-like header.
pub fn get_with(
    client: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
) -> reqwest::RequestBuilder {
    client.request(Method::GET, url).header(auth.0, auth.1)
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query value or one path segment: everything but RFC 3986 unreserved
/// characters (spaces become `%20`, never `+`; `/` becomes `%2F`).
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// [`NOT_UNRESERVED`] but `/`: a path of several segments.
const PATH: &percent_encoding::AsciiSet = &NOT_UNRESERVED.remove(b'/');

/// Percent-encodes a path of several segments: like [`encode`], but `/` stays.
pub fn encode_path(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, PATH).to_string()
}

/// Drops the query string's values that could carry secrets? None of our services put
/// secrets in URLs; this only shortens very long URLs for messages.
pub fn redact_url(url: &str) -> String {
    if url.len() > 300 {
        format!(
            "{}…",
            &url[..url
                .char_indices()
                .nth(300)
                .map(|(i, _)| i)
                .unwrap_or(url.len())]
        )
    } else {
        url.to_string()
    }
}

/// Parses an HTTP date (`Date`, RFC 5322 `X-RateLimit-Reset`).
pub fn header_date(headers: &HeaderMap, name: &str) -> Option<std::time::SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok())
}

/// The smallest integer among a header's values (several may appear: take the most
/// restrictive).
pub fn header_min_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_u64s(headers, name).min()
}

/// Every integer among a header's values (repeated lines and comma-separated lists).
pub fn header_u64s<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = u64> + 'h {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|s| s.trim().parse::<u64>().ok())
}

/// `Retry-After` in whole seconds or as an HTTP date.
pub fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    at.duration_since(std::time::SystemTime::now()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn min_header_takes_most_restrictive() {
        let mut h = HeaderMap::new();
        h.append("x-rate-limit-remaining", HeaderValue::from_static("40"));
        h.append("x-rate-limit-remaining", HeaderValue::from_static("7"));
        assert_eq!(header_min_u64(&h, "x-rate-limit-remaining"), Some(7));
    }

    struct Announces;
    impl ServicePolicy for Announces {
        fn retry_after(&self, _: StatusCode, _: &HeaderMap, _: &[u8]) -> Option<Duration> {
            None
        }
        fn pause_after(&self, _: &HeaderMap) -> Option<Duration> {
            None
        }
        fn budget_per_minute(&self, h: &HeaderMap) -> Option<u32> {
            header_min_u64(h, "x-budget").and_then(|b| u32::try_from(b).ok())
        }
    }

    /// The budget an answer announces paces the next requests to that endpoint (and only
    /// to that endpoint): 60/min is one a second after a burst of one.
    #[tokio::test]
    async fn announced_budget_paces_the_endpoint() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/slow", get(|| async { ([("x-budget", "60")], "ok") }))
            .route("/fast", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = Http::new(
            "test",
            Arc::new(Announces),
            None,
            RetryConfig::fast(),
            RequestStats::new(),
        );
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            move |c: &reqwest::Client| c.get(&url)
        };
        let start = Instant::now();
        for _ in 0..5 {
            http.send("GET /fast", &get("/fast")).await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "unpaced endpoint was slowed"
        );
        let start = Instant::now();
        for _ in 0..3 {
            http.send("GET /slow", &get("/slow")).await.unwrap();
        }
        // First: no budget known yet; second: the burst of one; third: a second later.
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        assert!(http.stats().waited() >= Duration::from_millis(800));
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after_header(&h), Some(Duration::from_secs(3)));
    }
}
