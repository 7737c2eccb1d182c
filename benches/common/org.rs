//! The generated org both benchmarks read (`check.rs`, `steady.rs`), and the simulator
//! started as a separate process so that memory figures are the measured side's own.
//! Each benchmark uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

pub struct Org {
    pub seed: String,
    pub mappings: Vec<(String, String)>,
    /// Members per group, per workspace.
    pub groups: BTreeMap<&'static str, Vec<usize>>,
    pub users_per_ws: BTreeMap<&'static str, usize>,
}

pub fn generate(users: usize, groups: usize) -> Org {
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

pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Writes `org` (seed, mappings) into `dir` and starts the simulator on it, which writes
/// `dir/scimwatch.toml`; returns once it listens.
pub fn start_org(exe: &str, org: &Org, dir: &Path) -> anyhow::Result<Child> {
    let seed_path = dir.join("seed.toml");
    std::fs::write(&seed_path, &org.seed)?;
    let mappings_dir = dir.join("mappings");
    std::fs::create_dir_all(&mappings_dir)?;
    for (name, text) in &org.mappings {
        std::fs::write(dir.join(name), text)?;
    }
    spawn_sim(exe, &seed_path, &dir.join("scimwatch.toml"), &mappings_dir)
}

/// Starts `scimwatch sim` with `seed`, writing the config for it; returns once listening.
pub fn spawn_sim(exe: &str, seed: &Path, config: &Path, mappings: &Path) -> anyhow::Result<Child> {
    let mut sim = Command::new(exe)
        .args(["sim", "--seed"])
        .arg(seed)
        .args(["--listen", "127.0.0.1:0", "--write-config"])
        .arg(config)
        .arg("--mappings")
        .arg(mappings)
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
    Ok(sim)
}
