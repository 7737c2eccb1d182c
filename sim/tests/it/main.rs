//! The simulator's one integration-test binary: its HTTP surfaces, driven with a plain
//! HTTP client and tiny receivers, with nothing of scimwatch.

mod hooks;
mod scim;
mod sim;
mod sinks;
