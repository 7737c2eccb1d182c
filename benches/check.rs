//! Benchmark: one `check` pass over a large generated org, run with
//! `cargo bench --bench check` (not a test; CI does not run it).
//!
//! The org: 10,000 Okta users, 200 mapped groups of 50 people, two Segment workspaces of
//! 5,000 members each (100 groups each), Segment in exactly the mapped state. The
//! simulator runs as a separate process (the release binary), so the memory figure is the
//! checker's own. It prints requests per service and endpoint next to the lower bound the
//! APIs' page sizes allow for this org, the wall time and the peak memory (VmHWM).
//!
//! Knobs (environment): `BENCH_USERS` (10000), `BENCH_GROUPS` (200).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::idp::okta::Okta;
use scimwatch::segment::SegmentClient;

#[path = "common/org.rs"]
mod org;
use org::{ceil_div, env_usize, generate, peak_rss_kib, start_org};

fn main() -> anyhow::Result<()> {
    let users = env_usize("BENCH_USERS", 10_000);
    let groups = env_usize("BENCH_GROUPS", 200);
    let org = generate(users, groups);
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("scimwatch.toml");
    let mut sim = start_org(env!("CARGO_BIN_EXE_scimwatch"), &org, dir.path())?;

    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let config = scimwatch::config::load(Some(&config_path))?;
            let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
            let mappings = scimwatch::mapping::load_dir(
                &config.mappings.dir,
                &config.base_dir,
                &known,
                Utc::now(),
            )?;
            let stats = RequestStats::new();
            let okta = Okta::new(&config.idp, RetryConfig::default(), stats.clone())?;
            let clients: Vec<SegmentClient> = config
                .workspaces
                .iter()
                .map(|w| SegmentClient::new(w, RetryConfig::default(), stats.clone()))
                .collect();
            let selected: Vec<_> = config.workspaces.iter().zip(clients.iter()).collect();
            let settings = scimwatch::reconcile::Settings::from_config(&config)?;
            let start = Instant::now();
            let report =
                scimwatch::app::check(&okta, &selected, &mappings, &settings, Utc::now()).await?;
            let wall = start.elapsed();
            anyhow::Ok((report, stats, wall))
        });
    let _ = sim.kill();
    let _ = sim.wait();
    let (report, stats, wall) = result?;

    // The fewest requests the page sizes allow for this org.
    let mut lower: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut add = |svc: &str, ep: &str, n: usize| {
        *lower.entry((svc.to_string(), ep.to_string())).or_default() += n
    };
    // Resolving names: listing every group of this org at the recommended page size.
    add("okta", "GET /api/v1/groups", ceil_div(groups, 200));
    for members in org.groups.values().flatten() {
        add(
            "okta",
            "GET /api/v1/groups/{id}/users",
            ceil_div(*members, 1000).max(1),
        );
    }
    add("okta", "GET /api/v1/logs", 1);
    for (ws, n) in &org.users_per_ws {
        let _ = ws;
        add("segment", "GET /", 1);
        add("segment", "GET /roles", 1);
        add("segment", "GET /sources", 1);
        add("segment", "GET /groups", ceil_div(groups / 2, 1000));
        for members in org.groups.get(ws).into_iter().flatten() {
            add(
                "segment",
                "GET /groups/{id}/users",
                ceil_div(*members, 1000).max(1),
            );
        }
        add("segment", "GET /users", ceil_div(*n, 1000));
        add("segment", "GET /users/{id}", *n);
        add("segment", "GET /audit-events", 2);
    }

    println!("scimwatch check benchmark: {users} Okta users, {groups} mapped groups, 2 workspaces of {} members", users / 2);
    println!(
        "findings: {} (a clean org: expected 0)",
        report.findings.len()
    );
    println!(
        "\n{:<10} {:<44} {:>9} {:>12}",
        "service", "endpoint", "requests", "lower bound"
    );
    let measured = stats.by_endpoint();
    let mut total = 0u64;
    for ((svc, ep), n) in &measured {
        let lb = lower
            .get(&(svc.clone(), ep.clone()))
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        println!("{svc:<10} {ep:<44} {n:>9} {lb:>12}");
        total += n;
    }
    for ((svc, ep), n) in &lower {
        if !measured.contains_key(&(svc.clone(), ep.clone())) {
            println!("{svc:<10} {ep:<44} {:>9} {n:>12}", "-");
        }
    }
    let lower_total: usize = lower.values().sum();
    for (svc, n) in stats.by_service() {
        let lb: usize = lower
            .iter()
            .filter(|((s, _), _)| *s == svc)
            .map(|(_, n)| n)
            .sum();
        println!("total {svc:<38} {n:>15} {lb:>12}");
    }
    println!("total {:<38} {total:>15} {lower_total:>12}", "all");
    println!(
        "\nwall time: {:.2} s (no rate limits in the simulator)",
        wall.as_secs_f64()
    );
    let per = stats.by_service();
    let okta_n = per.get("okta").copied().unwrap_or(0) as f64;
    let seg_n = per.get("segment").copied().unwrap_or(0) as f64;
    println!(
        "at real rate limits: Okta {:.1} min at 250 requests/min (half the groups bucket), Segment {:.1} min at 600 requests/min per workspace token",
        okta_n / 250.0,
        seg_n / 2.0 / 600.0
    );
    println!(
        "time waiting on rate limits: {:.2} s",
        stats.waited().as_secs_f64()
    );
    match peak_rss_kib() {
        Some(k) => println!(
            "peak memory (VmHWM of the checker): {:.1} MiB",
            k as f64 / 1024.0
        ),
        None => println!("peak memory: unavailable (no /proc)"),
    }
    Ok(())
}
