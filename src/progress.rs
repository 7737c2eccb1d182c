//! Progress on stderr while a one-shot command reads (`check`, `validate`, `plan`,
//! `apply`, `explain`, `report`): per service, the requests answered of those expected,
//! and "waiting N s for the rate limit" while the client paces itself.
//!
//! Contract:
//! - Shown only when stderr is a terminal; otherwise nothing at all is printed, so logs,
//!   pipes and CI output stay as they were.
//! - The expected count is an estimate that grows as the read learns how many groups
//!   and users there are (the clients announce them through
//!   [`RequestStats::expect`](crate::http::RequestStats::expect)); the bar never claims
//!   more done than expected.
//! - The bars are cleared when the read ends ([`Progress`] is dropped), before results
//!   are printed on stdout.
//!
//! The counting is kept apart from the drawing ([`Counts`]) so it can be tested without
//! a terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::http::{Observer, RequestStats};

/// A wait shorter than this is not worth a message.
const SHOW_WAITS_FROM: Duration = Duration::from_secs(1);

/// Per service: requests answered, requests expected, and the rate-limit wait in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub done: u64,
    pub expected: u64,
    /// Whole seconds of the wait announced since the last answer, if any.
    pub waiting: Option<u64>,
}

impl Count {
    /// The line shown after the bar: "37/120 requests", "37 requests" when nothing is
    /// expected yet, then the wait when there is one.
    pub fn line(&self) -> String {
        let mut s = if self.expected > 0 {
            format!("{}/{} requests", self.done, self.expected.max(self.done))
        } else {
            format!(
                "{} request{}",
                self.done,
                if self.done == 1 { "" } else { "s" }
            )
        };
        if let Some(secs) = self.waiting {
            s.push_str(&format!(", waiting {secs} s for the rate limit"));
        }
        s
    }
}

/// The counting half of the display (pure).
#[derive(Debug, Default)]
pub struct Counts(BTreeMap<String, Count>);

impl Counts {
    pub fn request(&mut self, service: &str) -> &Count {
        let c = self.0.entry(service.to_string()).or_default();
        c.done += 1;
        c.waiting = None;
        c
    }
    pub fn expect_requests(&mut self, service: &str, n: u64) -> &Count {
        let c = self.0.entry(service.to_string()).or_default();
        c.expected += n;
        c
    }
    /// `None` when the wait is too short to mention (nothing changes then).
    pub fn waiting(&mut self, service: &str, wait: Duration) -> Option<&Count> {
        if wait < SHOW_WAITS_FROM {
            return None;
        }
        let c = self.0.entry(service.to_string()).or_default();
        c.waiting = Some(wait.as_secs_f64().round() as u64);
        Some(c)
    }
}

struct Bars {
    multi: MultiProgress,
    counts: Counts,
    bars: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn show(&mut self, service: &str, count: Count) {
        let bar = self.bars.entry(service.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            let style = ProgressStyle::with_template("{prefix:>8} {bar:30} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(service.to_string());
            bar
        });
        bar.set_length(count.expected.max(count.done));
        bar.set_position(count.done);
        bar.set_message(count.line());
    }
}

/// The display; shown while it lives, cleared when dropped.
pub struct Progress {
    bars: Option<Arc<Mutex<Bars>>>,
}

struct Watch(Arc<Mutex<Bars>>);

impl Observer for Watch {
    fn request(&self, service: &str) {
        if let Ok(mut b) = self.0.lock() {
            let c = b.counts.request(service).clone();
            b.show(service, c);
        }
    }
    fn waiting(&self, service: &str, wait: Duration) {
        if let Ok(mut b) = self.0.lock() {
            if let Some(c) = b.counts.waiting(service, wait).cloned() {
                b.show(service, c);
            }
        }
    }
    fn expect_requests(&self, service: &str, n: u64) {
        if let Ok(mut b) = self.0.lock() {
            let c = b.counts.expect_requests(service, n).clone();
            b.show(service, c);
        }
    }
}

impl Progress {
    /// Shows the requests counted by `stats` on stderr, if stderr is a terminal.
    pub fn attach(stats: &RequestStats) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let bars = Arc::new(Mutex::new(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            counts: Counts::default(),
            bars: BTreeMap::new(),
        }));
        stats.observe(Arc::new(Watch(bars.clone())));
        Progress { bars: Some(bars) }
    }

    /// Whether anything is shown (stderr is a terminal).
    pub fn shown(&self) -> bool {
        self.bars.is_some()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bars) = &self.bars {
            if let Ok(b) = bars.lock() {
                for bar in b.bars.values() {
                    bar.finish_and_clear();
                }
                let _ = b.multi.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_expected_and_waits_per_service() {
        let mut c = Counts::default();
        assert_eq!(c.request("okta").line(), "1 request");
        c.expect_requests("segment", 5);
        c.request("segment");
        assert_eq!(c.expect_requests("segment", 20).line(), "1/25 requests");
        // A short pause is not mentioned; a long one is, until the next answer.
        assert!(c.waiting("segment", Duration::from_millis(300)).is_none());
        assert_eq!(
            c.waiting("segment", Duration::from_millis(41_600))
                .map(Count::line),
            Some("1/25 requests, waiting 42 s for the rate limit".to_string())
        );
        assert_eq!(c.request("segment").line(), "2/25 requests");
        // More done than announced: never "30/25".
        for _ in 0..28 {
            c.request("segment");
        }
        assert_eq!(c.request("segment").line(), "31/31 requests");
        assert_eq!(c.request("okta").line(), "2 requests");
    }

    #[test]
    fn nothing_is_shown_when_stderr_is_not_a_terminal() {
        // Under `cargo test` stderr is captured, not a terminal.
        if std::io::stderr().is_terminal() {
            return;
        }
        let stats = RequestStats::new();
        let p = Progress::attach(&stats);
        assert!(!p.shown());
        stats.expect_requests("segment", 3); // no observer: nothing happens
    }
}
