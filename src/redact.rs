//! Nothing a remote service says is trusted as text, and no secret leaves the process.
//!
//! Contract:
//! - [`excerpt`] turns a body another service sent (a sink's or an API's error answer)
//!   into a short, single-line excerpt: control characters become spaces, runs of
//!   whitespace collapse, and it is cut to [`EXCERPT_CHARS`] chars; every registered
//!   secret in it is masked.
//! - [`register`] records a secret value when the config loads (every `Secret` read by
//!   reference); [`mask`] replaces each registered value found in a text with `***`.
//!   Call [`mask`] (or [`excerpt`]) on any text that leaves the process and may hold a
//!   value from outside: sink and API error bodies, error chains put into `/status`, the
//!   store, alerts and the log.
//! - Values shorter than [`MIN_MASKED_BYTES`] are not registered (masking "abc" would
//!   garble ordinary words); config loading already refuses secrets that short where a
//!   secret must be strong.
//!
//! Never: log, print or store a registered value, or hand it out.

use std::collections::BTreeSet;
use std::sync::RwLock;

/// The longest excerpt, in chars.
pub const EXCERPT_CHARS: usize = 200;
/// Shorter values are not masked.
pub const MIN_MASKED_BYTES: usize = 8;
/// The most values the registry holds (a process loads a handful of secrets; tests and
/// reloads may load more): beyond this the oldest are kept and new ones still masked
/// only when they fit.
const MAX_REGISTERED: usize = 4096;

static SECRETS: RwLock<BTreeSet<String>> = RwLock::new(BTreeSet::new());

/// Remembers `value` as a secret to mask from now on.
pub fn register(value: &str) {
    let value = value.trim();
    if value.len() < MIN_MASKED_BYTES {
        return;
    }
    let mut set = match SECRETS.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if set.len() < MAX_REGISTERED {
        set.insert(value.to_string());
    }
    // A Slack-style URL secret also travels without its scheme and host in echoes of
    // the request path: mask the path too.
    if let Ok(u) = url::Url::parse(value) {
        let path = u.path();
        if path.len() >= MIN_MASKED_BYTES && path != "/" && set.len() < MAX_REGISTERED {
            set.insert(path.to_string());
        }
    }
}

/// `text` with every registered secret replaced by `***` (longest values first, so a
/// URL is masked whole before its path).
pub fn mask(text: &str) -> String {
    let set = match SECRETS.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut values: Vec<&String> = set.iter().filter(|v| text.contains(v.as_str())).collect();
    if values.is_empty() {
        return text.to_string();
    }
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for v in values {
        out = out.replace(v.as_str(), "***");
    }
    out
}

/// A short, single-line, masked excerpt of a body another service sent.
pub fn excerpt(body: &str) -> String {
    // Mask before cutting, so a secret straddling the cut is not left half-visible.
    let masked = mask(body);
    let mut out = String::with_capacity(EXCERPT_CHARS.min(masked.len()) + 4);
    let mut chars = 0;
    let mut last_space = true;
    for c in masked.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if chars == EXCERPT_CHARS {
            out.push('…');
            return out.trim_end().to_string();
        }
        out.push(c);
        chars += 1;
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_strips_control_characters_and_cuts() {
        let body = format!("bad\r\n\x1b[31mrequest\t\0{}", "x".repeat(1000));
        let e = excerpt(&body);
        assert!(e.starts_with("bad [31mrequest x"), "{e}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1, "{e}");
        assert!(e.ends_with('…'));
    }

    #[test]
    fn registered_secrets_are_masked_whole_and_by_url_path() {
        register("https://hooks.slack.invalid/services/T0/B0/redact-test-secret-1");
        register("short");
        let echoed = "invalid_token: POST /services/T0/B0/redact-test-secret-1 failed";
        assert_eq!(mask(echoed), "invalid_token: POST *** failed");
        let whole = "to https://hooks.slack.invalid/services/T0/B0/redact-test-secret-1";
        assert_eq!(mask(whole), "to ***");
        assert_eq!(mask("short words stay"), "short words stay");
        assert_eq!(excerpt("x /services/T0/B0/redact-test-secret-1\n"), "x ***");
    }
}
