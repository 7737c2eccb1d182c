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
        message = %f.message,
        "{what}"
    );
}
