//! Per-minute rate-limit windows and injected faults.
//!
//! Windows start with their first request and reset 60 s later (Okta's and Segment's
//! behaviour), keyed by whatever the service calls a bucket. With no budget a window still
//! counts, so headers always carry real numbers. Faults match by service, workspace,
//! method and a regex searched in the path after the service prefix; a fault with a
//! `count` disappears once used up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::{json, Value};

pub const UNLIMITED: u32 = 1_000_000;

struct Window {
    start: Instant,
    start_utc: DateTime<Utc>,
    count: u32,
}

#[derive(Clone, Debug)]
pub struct Verdict {
    pub limit: u32,
    pub remaining: u32,
    pub consumed: u32,
    pub reset: DateTime<Utc>,
    pub ms_before_next: u64,
    pub allowed: bool,
}

#[derive(Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, Window>>,
}

impl Limiter {
    /// Counts one request against `key` and says whether it fits in `budget`.
    pub fn hit(&self, key: &str, budget: Option<u32>) -> Verdict {
        let limit = budget.unwrap_or(UNLIMITED);
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = map.entry(key.to_string()).or_insert_with(|| Window {
            start: now,
            start_utc: Utc::now(),
            count: 0,
        });
        if now.duration_since(w.start) >= Duration::from_secs(60) {
            *w = Window {
                start: now,
                start_utc: Utc::now(),
                count: 0,
            };
        }
        let allowed = w.count < limit;
        if allowed {
            w.count += 1;
        }
        let elapsed = now.duration_since(w.start);
        let left = Duration::from_secs(60).saturating_sub(elapsed);
        Verdict {
            limit,
            remaining: limit.saturating_sub(w.count),
            consumed: if allowed { w.count } else { w.count + 1 },
            reset: w.start_utc + chrono::Duration::seconds(60),
            ms_before_next: left.as_millis() as u64,
            allowed,
        }
    }

    /// The verdict of a window without counting (for injected 429s).
    pub fn peek(&self, key: &str, budget: Option<u32>) -> Verdict {
        let limit = budget.unwrap_or(UNLIMITED);
        let map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (count, reset, left) = match map.get(key) {
            Some(w) => (
                w.count,
                w.start_utc + chrono::Duration::seconds(60),
                Duration::from_secs(60).saturating_sub(w.start.elapsed()),
            ),
            None => (
                0,
                Utc::now() + chrono::Duration::seconds(60),
                Duration::from_secs(60),
            ),
        };
        Verdict {
            limit,
            remaining: 0,
            consumed: count,
            reset,
            ms_before_next: left.as_millis() as u64,
            allowed: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub id: u64,
    pub service: String,
    pub workspace: Option<String>,
    pub path: Option<Regex>,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub count: Option<u32>,
    pub delay_ms: Option<u64>,
}

impl Fault {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "service": self.service,
            "workspace": self.workspace,
            "path": self.path.as_ref().map(|r| r.as_str().to_string()),
            "method": self.method,
            "status": self.status,
            "count": self.count,
            "delay_ms": self.delay_ms,
        })
    }
}

/// What an injected fault asks of one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Injected {
    pub status: Option<u16>,
    pub delay_ms: Option<u64>,
}

#[derive(Default)]
pub struct Faults {
    list: Mutex<Vec<Fault>>,
    seq: Mutex<u64>,
}

impl Faults {
    pub fn add(&self, mut f: Fault) -> u64 {
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *seq += 1;
        f.id = *seq;
        self.list.lock().unwrap_or_else(|e| e.into_inner()).push(f);
        *seq
    }

    pub fn remove(&self, id: Option<u64>) -> bool {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let before = list.len();
        match id {
            Some(id) => list.retain(|f| f.id != id),
            None => list.clear(),
        }
        before != list.len() || id.is_none()
    }

    pub fn snapshot(&self) -> Vec<Value> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().map(Fault::to_json).collect()
    }

    /// The first matching fault, consuming one of its uses.
    pub fn take(
        &self,
        service: &str,
        workspace: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<Injected> {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let idx = list.iter().position(|f| {
            (f.service == "all" || f.service == service)
                && f.workspace.as_deref().is_none_or(|w| Some(w) == workspace)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && f.path.as_ref().is_none_or(|r| r.is_match(path))
        })?;
        let f = &mut list[idx];
        let out = Injected {
            status: f.status,
            delay_ms: f.delay_ms,
        };
        if let Some(c) = f.count.as_mut() {
            *c = c.saturating_sub(1);
            if *c == 0 {
                list.remove(idx);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_enforced_within_a_window() {
        let l = Limiter::default();
        assert!(l.hit("k", Some(2)).allowed);
        let v = l.hit("k", Some(2));
        assert!(v.allowed && v.remaining == 0);
        assert!(!l.hit("k", Some(2)).allowed);
        assert!(l.hit("other", Some(2)).allowed);
        assert!(l.hit("k2", None).remaining > 1000);
    }

    #[test]
    fn faults_count_down() {
        let f = Faults::default();
        f.add(Fault {
            id: 0,
            service: "okta".into(),
            workspace: None,
            path: Some(Regex::new("^/api/v1/groups").unwrap()),
            method: None,
            status: Some(500),
            count: Some(1),
            delay_ms: None,
        });
        assert!(f.take("segment", None, "GET", "/api/v1/groups").is_none());
        assert!(f.take("okta", None, "GET", "/api/v1/users").is_none());
        assert_eq!(
            f.take("okta", None, "GET", "/api/v1/groups")
                .unwrap()
                .status,
            Some(500)
        );
        assert!(f.take("okta", None, "GET", "/api/v1/groups").is_none());
    }
}
