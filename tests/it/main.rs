//! One integration-test binary (STYLE.md): clients against tiny servers and the
//! simulator, end-to-end `check` runs, snapshot tests.

mod alerts;
mod alerts_e2e;
mod azure;
mod azure_daemon;
mod backup;
mod chain;
mod cli;
mod config;
mod daemon;
mod deploy;
mod docs;
mod e2e;
mod empty_group;
mod enforce;
mod full_pass;
mod governance;
mod hostile;
mod incremental;
mod mutation;
mod okta;
mod refresh_config;
mod segment;
mod server;
mod store;
mod supervise;
