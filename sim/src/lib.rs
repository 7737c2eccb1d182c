//! The simulator (`../shared/spec/sim.md`): Okta (Management API, System Log, OAuth token
//! endpoint), Entra ID (Microsoft Graph and its token endpoint), the Segment Public API per
//! workspace, Segment SCIM, a push engine (Okta Group Push per change, Entra provisioning
//! in cycles) and the `/_sim` control API, all on one address.
//!
//! Contract:
//! - Responses follow the real services' shapes, paging, errors and rate-limit headers
//!   (`../shared/reference/*.md`, "What a faithful fake must do"): Okta lists are bare
//!   arrays paged by `link` headers (`self` then `next`, absolute URLs back at this sim),
//!   Segment answers `{"data"}` or `{"errors"}` with `pagination.next` absent on the last
//!   page; cursors are HMAC-signed and forged ones are refused.
//! - Every Okta and Segment response, errors and 429s included, carries that service's
//!   rate-limit headers.
//! - One store: the Public API, SCIM and the push engine all write Segment state through
//!   `state::Workspace`'s mutators, which append the audit events of sim.md's table.
//!
//! Invariants: the state lives behind one mutex that is never held across an `.await`;
//! the seed has no history (System Log and audit trail start empty). Never log a token.
//!
//! Layout: `seed.rs` (the seed file), `state.rs` (the world and its mutators), `okta.rs` +
//! `systemlog.rs` + `oauth.rs`, `graph.rs` (Microsoft Graph and the Entra token endpoint
//! under `/graph`) + `graph_state.rs` (the Entra tenant and its mutators), `segment.rs` +
//! `segment_iam.rs`, `scim.rs` + `scim_schema.rs` (SCIM discovery: /Schemas,
//! /ResourceTypes, /ServiceProviderConfig), `push.rs`, `hooks.rs` (Okta Event Hooks:
//! verification and delivery), `sinks.rs` (fake PagerDuty, Slack and webhook receivers
//! under `/pagerduty`, `/slack`, `/webhook`), `control.rs`, `filter.rs` (Okta's filter language), `cursor.rs`
//! (signed cursors, ids), `ratelimit.rs` (windows and faults), `http.rs` (the request type
//! and response helpers).

// Handlers return a ready error `Response` as `Err` for early exits; its size is irrelevant here.
#![allow(clippy::result_large_err)]

mod control;
mod cursor;
mod filter;
mod graph;
mod graph_state;
mod graph_sync;
mod hooks;
mod http;
mod oauth;
mod okta;
mod push;
mod ratelimit;
mod scim;
mod scim_schema;
mod seed;
mod segment;
mod segment_iam;
mod sinks;
mod state;
mod systemlog;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State as AxumState};
use axum::response::Response;
use axum::Router;
use tokio_util::sync::CancellationToken;

pub(crate) use http::Req;

/// Which identity provider a `--write-config` points at: the simulator's own copy of the
/// choice, so it depends on nothing of scimwatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdpKind {
    Okta,
    AzureAd,
}

impl IdpKind {
    /// The `[idp] kind` value in scimwatch.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            IdpKind::Okta => "okta",
            IdpKind::AzureAd => "azure_ad",
        }
    }
}

/// Segment's well-known role ids (Segment's, not ours: they are the same in every
/// workspace), copied here so the simulator stands alone. scimwatch's test
/// `the_simulator_and_the_product_agree_on_segment_role_ids` keeps the copies equal.
pub const WORKSPACE_OWNER_ROLE_ID: &str = "1WDUuRLxv84rrfCNUwvkrRtkxnS";
/// Segment's "Minimal Workspace Access" role id.
pub const MINIMAL_ACCESS_ROLE_ID: &str = "1aEWAcU0fArxScocwH9xxLgW7r3";

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid seed: {message}")]
    Seed { message: String },
    #[error("binding {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the seed file {path}")]
    ReadSeed {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Everything the handlers share.
pub(crate) struct App {
    state: Mutex<state::State>,
    pub signer: cursor::Signer,
    pub limiter: ratelimit::Limiter,
    pub faults: ratelimit::Faults,
    pub push: push::Push,
    pub hooks: hooks::Hooks,
    pub sinks: sinks::Sinks,
    pub oauth: oauth::OAuth,
    pub addr: SocketAddr,
    pub retry_after_toggle: std::sync::atomic::AtomicU64,
}

impl App {
    pub fn state(&self) -> MutexGuard<'_, state::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct SimHandle {
    addr: SocketAddr,
    app: Arc<App>,
    cancel: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    engine: tokio::task::JoinHandle<()>,
    hooks: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A ready scimwatch.toml for this sim (sim.md `--write-config`), for the seed's IdP
    /// (Okta when it has both).
    pub fn config_toml(&self, mappings_dir: &Path, idp_extra: &str) -> String {
        self.config_toml_for(mappings_dir, idp_extra, None)
            .unwrap_or_default()
    }

    /// Like [`SimHandle::config_toml`] for a chosen IdP (`--idp`); `None` picks the only
    /// one seeded, Okta when both are. An IdP the seed lacks is an error.
    pub fn config_toml_for(
        &self,
        mappings_dir: &Path,
        idp_extra: &str,
        idp: Option<IdpKind>,
    ) -> Result<String, SimError> {
        let st = self.app.state();
        let url = self.url();
        let kind = match idp {
            Some(k) => k,
            None if st.seeded_okta => IdpKind::Okta,
            None => IdpKind::AzureAd,
        };
        let mut out =
            String::from("# Written by `scimwatch sim`: points at the simulator.\n\n[idp]\n");
        match (kind, &st.azure) {
            (IdpKind::Okta, _) if st.seeded_okta => {
                out.push_str("kind = \"okta\"\n");
                out.push_str(&format!("url = {}\n", toml_str(&format!("{url}/okta"))));
                out.push_str(&format!("token = {}\n", toml_str(&st.okta.token)));
            }
            (IdpKind::AzureAd, Some(az)) => {
                out.push_str("kind = \"azure_ad\"\n");
                out.push_str(&format!(
                    "url = {}\n",
                    toml_str(&format!("{url}/graph/v1.0"))
                ));
                out.push_str(&format!(
                    "login_url = {}\n",
                    toml_str(&format!("{url}/graph/login"))
                ));
                out.push_str(&format!("tenant_id = {}\n", toml_str(&az.tenant_id)));
                out.push_str(&format!("client_id = {}\n", toml_str(&az.client_id)));
                match &az.client_secret {
                    Some(s) => out.push_str(&format!("client_secret = {}\n", toml_str(s))),
                    None => out.push_str(
                        "# The seed accepts only certificate assertions: set certificate_file and certificate_key_file.\n",
                    ),
                }
            }
            (k, _) => {
                return Err(SimError::Seed {
                    message: format!(
                        "--idp {}: the seed has no [{}] section",
                        k.as_str(),
                        if k == IdpKind::Okta { "okta" } else { "azure" }
                    ),
                })
            }
        }
        for line in idp_extra.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for ws in st.workspaces.values() {
            out.push_str("\n[[workspace]]\n");
            out.push_str(&format!("name = {}\n", toml_str(&ws.name)));
            out.push_str(&format!(
                "api_url = {}\n",
                toml_str(&format!("{url}/segment/{}", ws.name))
            ));
            out.push_str(&format!("token = {}\n", toml_str(&ws.token)));
            out.push_str(&format!(
                "self_actor = {}\n",
                toml_str(&format!("public-api-token/{}", ws.token_id))
            ));
            if let (IdpKind::AzureAd, Some(az)) = (kind, &st.azure) {
                if let Some(a) = az.sync.apps.get(&ws.name) {
                    out.push_str(&format!("entra_app_id = {}\n", toml_str(&a.app_id)));
                }
            }
        }
        out.push_str("\n[mappings]\n");
        out.push_str(&format!(
            "dir = {}\n",
            toml_str(&mappings_dir.to_string_lossy())
        ));
        Ok(out)
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.server.await;
        let _ = self.engine.await;
        let _ = self.hooks.await;
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Parses the seed, binds `listen`, spawns the server and the push engine, returns once
/// it accepts connections.
pub async fn start(seed_toml: &str, listen: &str) -> Result<SimHandle, SimError> {
    let seed = seed::parse(seed_toml)?;
    let st = state::State::from_seed(&seed, seed_toml)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen.to_string(),
        source,
    })?;
    let app = Arc::new(App {
        state: Mutex::new(st),
        signer: cursor::Signer::new(),
        limiter: ratelimit::Limiter::default(),
        faults: ratelimit::Faults::default(),
        push: push::Push::new(seed.push.delay, seed.push.cycle),
        hooks: hooks::Hooks::new(),
        sinks: sinks::Sinks::default(),
        oauth: oauth::OAuth::new(),
        addr,
        retry_after_toggle: std::sync::atomic::AtomicU64::new(0),
    });
    if seed.push.initial {
        push::initial_push(&app);
    }
    let cancel = CancellationToken::new();
    let router = Router::new().fallback(dispatch).with_state(app.clone());
    let c = cancel.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { c.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "The simulator's server stopped.");
        }
    });
    let engine = tokio::spawn(push::run(app.clone(), cancel.clone()));
    let hooks = tokio::spawn(hooks::run(app.clone(), cancel.clone()));
    tracing::info!(%addr, "Simulator listening.");
    Ok(SimHandle {
        addr,
        app,
        cancel,
        server,
        engine,
        hooks,
    })
}

/// `scimwatch sim --seed FILE [--listen ADDR] [--write-config FILE] [--mappings DIR]`.
pub async fn run_cli(
    seed: &Path,
    listen: &str,
    write_config: Option<&Path>,
    mappings: &Path,
    idp: Option<IdpKind>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(seed).map_err(|source| SimError::ReadSeed {
        path: seed.display().to_string(),
        source,
    })?;
    let handle = start(&text, listen).await?;
    if write_config.is_some() && idp.is_none() {
        let both = {
            let st = handle.app.state();
            st.seeded_okta && st.azure.is_some()
        };
        if both {
            handle.stop().await;
            anyhow::bail!(
                "the seed has both [okta] and [azure]: pass --idp okta or --idp azure_ad to say which one --write-config points at"
            );
        }
    }
    if let Some(path) = write_config {
        let dir = if mappings.is_absolute() {
            mappings.to_path_buf()
        } else {
            std::env::current_dir()?.join(mappings)
        };
        std::fs::write(path, handle.config_toml_for(&dir, "", idp)?)?;
        tracing::info!(path = %path.display(), "Wrote the config for this simulator.");
    }
    println!("listening on {}", handle.url());
    shutdown_signal().await;
    tracing::info!("Simulator stopping.");
    handle.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn dispatch(AxumState(app): AxumState<Arc<App>>, req: Request) -> Response {
    let req = match Req::read(req, app.addr).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let path = req.path.clone();
    if let Some(rest) = path.strip_prefix("/okta") {
        return okta::handle(&app, req.with_path(rest)).await;
    }
    if let Some(rest) = path.strip_prefix("/graph/") {
        let rest = format!("/{rest}");
        return graph::handle(&app, req.with_path(&rest)).await;
    }
    if let Some(rest) = path.strip_prefix("/segment/") {
        let (ws, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let ws = ws.to_string();
        if let Some(scim_path) = tail.strip_prefix("/scim/v2") {
            return scim::handle(&app, &ws, req.with_path(scim_path)).await;
        }
        return segment::handle(&app, &ws, req.with_path(tail)).await;
    }
    if let Some(rest) = path.strip_prefix("/_sim") {
        return control::handle(&app, req.with_path(rest)).await;
    }
    if let Some(resp) = sinks::handle(&app, &req) {
        return resp;
    }
    http::json(
        axum::http::StatusCode::NOT_FOUND,
        &serde_json::json!({"error": "not found", "path": path}),
        "application/json",
    )
}
