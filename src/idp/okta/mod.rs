//! Okta Management API client (reference/okta.md).
