//! Logs go to stderr (stdout carries results), filtered by `RUST_LOG` (default `warn`
//! for one-shot commands, `info` for servers), as text for people or as one JSON object a
//! line (`--log-format json`, or `log.format = "json"` in the config).
//!
//! Levels mean who must act: ERROR is "the tool or its access is broken, a person must fix
//! it" (a pass that failed, a store that cannot record, a sink that is broken). Findings
//! are what the tool is *for*, not a failure of it: they are logged at INFO under their own
//! target, [`FINDING_TARGET`], so a log-based alert can select them (or leave them out)
//! without confusing them with the tool breaking. Alerting on findings is the sinks' job.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::reconcile::Finding;

/// The target findings are logged under.
pub const FINDING_TARGET: &str = "scimwatch::finding";

pub fn init(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Logs one finding (opened, changed or resolved: `what` says which) at INFO under
/// [`FINDING_TARGET`], its facts as fields. Never an ERROR: see the module note.
pub fn finding(what: &str, f: &Finding) {
    tracing::info!(
        target: FINDING_TARGET,
        id = %f.id,
        kind = %f.kind,
        state = f.state.as_str(),
        severity = f.severity.as_str(),
        workspace = %f.workspace,
        // Not `message`: that is the event's own ("Finding opened."), which it would hide.
        text = %f.message,
        "{what}"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn a_critical_finding_is_logged_at_info_under_its_own_target_never_error() {
        let f: Finding = serde_json::from_value(serde_json::json!({
            "id": "04d1d0f2183e42c4", "kind": "direct_grant", "state": "drift",
            "severity": "critical", "workspace": "production", "user": "bob@acme.test",
            "group": null, "grant": null, "since": "2026-11-26T21:40:00Z", "deadline": null,
            "attribution": null, "reverted_by_scim": false,
            "message": "bob@acme.test holds Workspace Owner directly.", "remedy": "Remove it."
        }))
        .unwrap();
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(buf.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || finding("Finding opened.", &f));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let l = &lines[0];
        assert_eq!(l["level"], "INFO", "{l}");
        assert_eq!(l["target"], FINDING_TARGET, "{l}");
        assert_eq!(l["fields"]["message"], "Finding opened.", "{l}");
        assert_eq!(l["fields"]["severity"], "critical", "{l}");
        assert_eq!(l["fields"]["kind"], "direct_grant", "{l}");
        assert_eq!(l["fields"]["text"], f.message.as_str(), "{l}");
    }
}
