//! No zombie: a daemon whose reconciler died, or whose store cannot record findings, stops
//! and says so (exit non-zero through `run`'s error, `/livez` and `/readyz` 503), instead
//! of running on with a healthy face.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scimwatch::daemon::Daemon;
use scimwatch::http::RetryConfig;
use scimwatch::triggers::Reason;
use scimwatch_sim::{self as sim, SimHandle};
use tokio_util::sync::CancellationToken;

const SEED: &str = include_str!("../../deploy/demo-seed.toml");

fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

async fn daemon(sim: &SimHandle, dir: &Path) -> Arc<Daemon> {
    let text = format!(
        "{}\n[store]\npath = \"{}\"\n[sync]\ninterval = \"1h\"\n[triggers]\nsystem_log_poll = \"0s\"\naudit_poll = \"0s\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
        sim.config_toml(&mappings_dir(), "propagation_window = \"60m\""),
        dir.join("scimwatch.db").display()
    );
    let config =
        scimwatch::config::load_str(&text, Path::new("/tmp/scimwatch.toml"), &Default::default())
            .expect("config");
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    let mappings = scimwatch::mapping::load_dir(
        &mappings_dir(),
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &known,
        chrono::Utc::now(),
    )
    .expect("mappings");
    Arc::new(
        Daemon::build(config, mappings, RetryConfig::fast())
            .await
            .expect("daemon builds"),
    )
}

/// Serves the daemon's own router on a fresh port and returns `GET path`'s status.
async fn probe(d: &Daemon, path: &str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = scimwatch::server::router(d.server.clone(), true);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let status = reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16();
    server.abort();
    status
}

/// Waits for the first successful full pass.
async fn first_pass(d: &Daemon) {
    let start = Instant::now();
    while d.server.findings.read().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(15), "no pass");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reconciler_stops_the_daemon_within_seconds_and_livez_says_so() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&sim, dir.path()).await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(d.clone().run(cancel.clone()));
    d.activator.activate(Reason::Startup);
    first_pass(&d).await;
    assert_eq!(probe(&d, "/livez").await, 200);

    d.inject_reconciler_panic();
    d.activator.activate(Reason::Periodic);
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("the daemon stops by itself")
        .unwrap();
    let err = result.expect_err("a dead reconciler is an error, so the process exits non-zero");
    assert!(
        err.to_string()
            .contains("the reconciler stopped: it panicked"),
        "{err:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(probe(&d, "/livez").await, 503);
    assert_eq!(probe(&d, "/readyz").await, 503);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_record_findings_stops_the_daemon_with_what_to_do() {
    let sim = sim::start(SEED, "127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&sim, dir.path()).await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(d.clone().run(cancel.clone()));
    d.activator.activate(Reason::Startup);
    first_pass(&d).await;

    // The store breaks under the running daemon: its findings table is gone.
    {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            dir.path().join("scimwatch.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("DROP TABLE findings")
            .execute(&mut c)
            .await
            .unwrap();
    }
    d.activator.activate(Reason::Periodic);
    let result = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("the daemon stops by itself")
        .unwrap();
    let err = result.expect_err("the process exits non-zero");
    let text = format!("{err:#}");
    assert!(text.contains("cannot record findings"), "{text}");
    assert!(text.contains("scimwatch.db"), "names the store: {text}");
    assert_eq!(probe(&d, "/readyz").await, 503);
    sim.stop().await;
}
