//! Okta's System Log, `GET /api/v1/logs` (okta.md §5): polling (no `until`) walks the log
//! in persistence order and always answers a `next` link, even on an empty page; bounded
//! queries (`since` + `until`) are ordered by `published`. `since` with `after` is a 400;
//! a `since` more than 180 days back is a 400 `E0000053`, as Okta answers it. With the
//! seed's `log_page_cap`, polling pages stop at that many events although more wait
//! (Okta's short, non-final pages: only an empty page means caught up).

use axum::response::Response;
use chrono::{Duration, Utc};
use serde_json::Value;

use super::cursor::parse_time;
use super::filter::json_get;
use super::okta::{err, limit_of, Ctx};

impl Ctx<'_> {
    pub(super) fn logs(&self) -> Response {
        let limit = match limit_of(self.req, 100, 1, 1000) {
            Ok(l) => l,
            Err(r) => return r,
        };
        if self.req.q("since").is_some() && self.req.q("after").is_some() {
            return err(400, "since: cannot be combined with after");
        }
        let time_param = |k: &str| match self.req.q(k) {
            None => Ok(None),
            Some(s) => parse_time(s)
                .map(Some)
                .ok_or_else(|| err(400, &format!("{k}: not a valid date-time"))),
        };
        let since = match time_param("since") {
            Ok(t) => t,
            Err(r) => return r,
        };
        if since.is_some_and(|t| t < Utc::now() - Duration::days(180)) {
            return too_far_back();
        }
        let until = match time_param("until") {
            Ok(t) => t,
            Err(r) => return r,
        };
        let filt = match self.expr("filter", None) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let q = self.req.q("q").map(str::to_lowercase);
        let descending = self
            .req
            .q("sortOrder")
            .is_some_and(|s| s.eq_ignore_ascii_case("DESCENDING"));
        let log = &self.st.okta.log;
        let since = since.unwrap_or_else(|| until.unwrap_or_else(Utc::now) - Duration::days(7));
        let matches = |e: &super::state::LogEvent| {
            filt.as_ref()
                .is_none_or(|f| f.eval(&|a| json_get(&e.json, a)))
                && q.as_ref()
                    .is_none_or(|q| e.json.to_string().to_lowercase().contains(q))
        };
        if !self.principal.admin_role {
            let next = until
                .is_none()
                .then(|| self.app.signer.okta(&format!("l:{}", log.len())));
            return self.page(vec![], next, Some(limit));
        }
        if let Some(until) = until {
            // Bounded query: ordered by `published`, paged by offset.
            let offset: usize = match self.after("b") {
                Ok(a) => a.and_then(|s| s.parse().ok()).unwrap_or(0),
                Err(r) => return r,
            };
            let mut hits: Vec<&super::state::LogEvent> = log
                .iter()
                .filter(|e| e.published >= since && e.published < until && matches(e))
                .collect();
            hits.sort_by_key(|e| e.published);
            if descending {
                hits.reverse();
            }
            let page: Vec<Value> = hits
                .iter()
                .skip(offset)
                .take(limit)
                .map(|e| e.json.clone())
                .collect();
            let next = (hits.len() > offset + limit)
                .then(|| self.app.signer.okta(&format!("b:{}", offset + limit)));
            return self.page(page, next, Some(limit));
        }
        // Polling: persistence order; `next` always present.
        let start = match self.after("l") {
            Ok(Some(p)) => p.parse::<usize>().unwrap_or(0).min(log.len()),
            Ok(None) => log
                .iter()
                .position(|e| e.published >= since)
                .unwrap_or(log.len()),
            Err(r) => return r,
        };
        let cap = self.st.okta.log_page_cap.map_or(limit, |c| c.min(limit));
        let mut items = Vec::new();
        let mut pos = start;
        while pos < log.len() && items.len() < cap {
            let e = &log[pos];
            if e.published >= since && matches(e) {
                items.push(e.json.clone());
            }
            pos += 1;
        }
        let next = self.app.signer.okta(&format!("l:{pos}"));
        self.page(items, Some(next), Some(limit))
    }
}

/// Okta's answer to a `since` older than it allows: 400 `E0000053`.
fn too_far_back() -> Response {
    let mut body = super::okta::error_body(400, "since: must be within the last 180 days");
    body["errorCode"] = serde_json::json!("E0000053");
    body["errorLink"] = serde_json::json!("E0000053");
    body["errorSummary"] =
        serde_json::json!("Invalid request: since cannot be more than 180 days in the past");
    super::http::json(super::http::status(400), &body, "application/json")
}
