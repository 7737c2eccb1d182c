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
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::Utc;
use scimwatch::http::{RequestStats, RetryConfig};
use scimwatch::idp::okta::Okta;
use scimwatch::segment::SegmentClient;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

struct Org {
    seed: String,
    mappings: Vec<(String, String)>,
    /// Members per group, per workspace.
    groups: BTreeMap<&'static str, Vec<usize>>,
    users_per_ws: BTreeMap<&'static str, usize>,
}

fn generate(users: usize, groups: usize) -> Org {
    let workspaces = ["production", "staging"];
    let per_group = users / groups;
    let mut seed = String::from("[okta]\ntoken = \"okta-sim-token\"\napp_id = \"0oasegment\"\n\n");
    for u in 0..users {
        let _ = writeln!(seed, "[[okta.user]]\nlogin = \"user{u:05}@bench.test\"\n");
    }
    let mut org_groups: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    let mut mapping_text: BTreeMap<&'static str, String> = workspaces
        .iter()
        .map(|w| (*w, format!("workspace = \"{w}\"\n\n")))
        .collect();
    let mut seg_groups: BTreeMap<&'static str, String> = BTreeMap::new();
    for g in 0..groups {
        let ws = workspaces[g % 2];
        let members: Vec<String> = (g * per_group..(g + 1) * per_group)
            .map(|u| format!("\"user{u:05}@bench.test\""))
            .collect();
        let name = format!("Bench Group {g:03}");
        let _ = writeln!(
            seed,
            "[[okta.group]]\nname = \"{name}\"\nmembers = [{}]\npushed_to = [\"{ws}\"]\n",
            members.join(", ")
        );
        let grant = if g % 3 == 0 {
            "{ role = \"Source Read-only\", sources = [\"web\"] }"
        } else {
            "{ role = \"Tracking Plan Read-only\" }"
        };
        let _ = writeln!(
            seg_groups.entry(ws).or_default(),
            "[[segment.workspace.group]]\nname = \"{name}\"\nmembers = [{}]\ngrants = [ {grant} ]\n",
            members.join(", ")
        );
        let mapping_grant = if g % 3 == 0 {
            "  [[group.grant]]\n  role = \"Source Read-only\"\n  sources = [\"web\"]\n"
        } else {
            "  [[group.grant]]\n  role = \"Tracking Plan Read-only\"\n"
        };
        let _ = writeln!(
            mapping_text.entry(ws).or_default(),
            "[[group]]\nidp_group = \"{name}\"\n{mapping_grant}"
        );
        org_groups.entry(ws).or_default().push(per_group);
    }
    for ws in workspaces {
        let _ = writeln!(
            seed,
            "[[segment.workspace]]\nname = \"{ws}\"\ntoken = \"seg-{ws}-token\"\nscim_token = \"seg-{ws}-scim\"\nsources = [ {{ slug = \"web\", name = \"Web\" }} ]\n"
        );
        seed.push_str(seg_groups.get(ws).map(String::as_str).unwrap_or(""));
    }
    seed.push_str("[push]\ndelay = \"1s\"\n");
    let users_per_ws = workspaces
        .iter()
        .map(|w| (*w, org_groups.get(w).map(|g| g.iter().sum()).unwrap_or(0)))
        .collect();
    Org {
        seed,
        mappings: mapping_text
            .into_iter()
            .map(|(w, t)| (format!("mappings/{w}.toml"), t))
            .collect(),
        groups: org_groups,
        users_per_ws,
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() -> anyhow::Result<()> {
    let users = env_usize("BENCH_USERS", 10_000);
    let groups = env_usize("BENCH_GROUPS", 200);
    let org = generate(users, groups);
    let dir = tempfile::tempdir()?;
    let seed_path = dir.path().join("seed.toml");
    std::fs::write(&seed_path, &org.seed)?;
    let mappings_dir = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings_dir)?;
    for (name, text) in &org.mappings {
        std::fs::write(dir.path().join(name), text)?;
    }
    let config_path = dir.path().join("scimwatch.toml");

    let exe = env!("CARGO_BIN_EXE_scimwatch");
    let mut sim = Command::new(exe)
        .args(["sim", "--seed"])
        .arg(&seed_path)
        .args(["--listen", "127.0.0.1:0", "--write-config"])
        .arg(&config_path)
        .arg("--mappings")
        .arg(&mappings_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = sim
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no sim stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("listening on") {
        let _ = sim.kill();
        anyhow::bail!("the simulator did not start: {line:?}");
    }

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
