//! The ground floor every layer shares: how an error is told to a person (its chain on one
//! line) and how a caller should treat it ([`ErrorClass`]).
//!
//! Nothing here knows a vendor: the IdP clients and the Segment client both classify their
//! errors with [`ErrorClass::from_status`], so the two providers never import each other.

/// How a caller should treat an error (STYLE.md habit 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth trying again later (rate limit or server trouble that outlasted the retries).
    Transient,
    /// Credentials or permissions: a person must fix them.
    Auth,
    /// A request we should not have made, or an answer we could not read.
    Bug,
}

impl ErrorClass {
    /// The class of an HTTP error status, the same for every API we call: 401/403 need a
    /// person (credentials, scopes, roles), 429 and 5xx outlasted the retries and are
    /// worth another try later, anything else is a request we should not have made.
    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            401 | 403 => ErrorClass::Auth,
            429 | 500..=599 => ErrorClass::Transient,
            _ => ErrorClass::Bug,
        }
    }
}

/// An error and its causes on one line, each cause once (a cause whose text an outer
/// message already contains is not repeated), with every configured secret masked: this
/// is the text the CLI prints, the log records and `/status` shows.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    crate::redact::mask(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_as_before() {
        for (status, class) in [
            (401, ErrorClass::Auth),
            (403, ErrorClass::Auth),
            (429, ErrorClass::Transient),
            (500, ErrorClass::Transient),
            (503, ErrorClass::Transient),
            (599, ErrorClass::Transient),
            (400, ErrorClass::Bug),
            (404, ErrorClass::Bug),
            (422, ErrorClass::Bug),
        ] {
            assert_eq!(ErrorClass::from_status(status), class, "{status}");
        }
    }

    #[test]
    fn chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading groups")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("connection reset"));
        assert_eq!(chain(&e), "reading groups: connection reset");
        let e = anyhow::Error::new(std::io::Error::other("boom")).context("boom");
        assert_eq!(chain(e.as_ref()), "boom");
    }

    #[test]
    fn chain_masks_configured_secrets() {
        crate::redact::register("chain-test-secret-0123456789");
        let e = std::io::Error::other("the server said: chain-test-secret-0123456789 is wrong");
        let text = chain(&e);
        assert!(!text.contains("chain-test-secret-0123456789"), "{text}");
        assert!(text.contains("is wrong"), "{text}");
    }
}
