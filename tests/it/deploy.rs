//! The deployment files against the product: every metric the Grafana dashboard, the
//! Prometheus rules and the PrometheusRule query is one `/metrics` renders (histogram
//! series only on histograms), and the Kubernetes config loads with its mappings and
//! agrees with the manifests and the rules. The tools' own checks (hadolint, promtool,
//! systemd-analyze, kustomize, kubernetes-validate, the image) are `deploy/check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use scimwatch::http::RequestStats;
use scimwatch::metrics::Metrics;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Family name → type, from the `# TYPE` lines `/metrics` renders before any sample.
fn families() -> BTreeMap<String, String> {
    Metrics::new()
        .render(&RequestStats::default())
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Every `scimwatch_…` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("scimwatch_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Not part of a longer word (a recording rule's `dashboard:…`, a path).
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The names in `text` that `/metrics` does not serve.
fn unknown(text: &str, fam: &BTreeMap<String, String>) -> Vec<String> {
    names_in(text)
        .into_iter()
        .filter(|n| {
            if fam.contains_key(n) {
                return false;
            }
            let histogram_series = ["_bucket", "_sum", "_count"].iter().any(|s| {
                n.strip_suffix(s)
                    .is_some_and(|base| fam.get(base).map(String::as_str) == Some("histogram"))
            });
            !histogram_series
        })
        .collect()
}

fn dashboard_queries() -> Vec<String> {
    let d: serde_json::Value = serde_json::from_str(&read("deploy/grafana/scimwatch.json"))
        .expect("the dashboard is JSON");
    let panels = d["panels"].as_array().expect("panels");
    let mut exprs = Vec::new();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("a panel id")),
            "duplicate id: {p}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{}",
            p["title"]
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs
}

#[test]
fn the_dashboard_queries_only_metrics_the_daemon_serves() {
    let fam = families();
    let exprs = dashboard_queries();
    assert!(exprs.len() >= 20, "{}", exprs.len());
    let all = exprs.join("\n");
    assert_eq!(unknown(&all, &fam), Vec::<String>::new());
    // What the issue asks the dashboard to show.
    for must in [
        "scimwatch_passes_total",
        "scimwatch_pass_duration_seconds_bucket",
        "scimwatch_api_requests_total",
        "scimwatch_rate_limit_wait_seconds_total",
        "scimwatch_open_findings",
        "scimwatch_propagation_latency_seconds_bucket",
        "scimwatch_alerts_sent_total",
        "scimwatch_alert_outbox_depth",
    ] {
        assert!(
            names_in(&all).contains(must),
            "the dashboard does not show {must}"
        );
    }
    // And the check can fail: a name the daemon does not serve is caught.
    assert_eq!(
        unknown(
            "rate(scimwatch_passes_totl[5m]) + scimwatch_open_findings_bucket",
            &fam
        ),
        vec!["scimwatch_open_findings_bucket", "scimwatch_passes_totl"]
    );
}

#[test]
fn the_alert_rules_query_only_metrics_the_daemon_serves() {
    let fam = families();
    for file in [
        "deploy/prometheus/scimwatch.rules.yml",
        "deploy/prometheus/scimwatch.rules.test.yml",
        "deploy/kubernetes/base/prometheusrule.yaml",
    ] {
        let text = read(file);
        assert_eq!(unknown(&text, &fam), Vec::<String>::new(), "{file}");
    }
    let rules = read("deploy/prometheus/scimwatch.rules.yml");
    for alert in [
        "ScimwatchDown",
        "ScimwatchNotReady",
        "ScimwatchNoSuccessfulPass",
        "ScimwatchSourceUnavailable",
        "ScimwatchAlertOutboxBackingUp",
        "ScimwatchAlertSinkBroken",
    ] {
        assert!(rules.contains(&format!("- alert: {alert}\n")), "{alert}");
    }
}

#[test]
fn the_kubernetes_config_loads_with_its_mappings_and_matches_the_manifests() {
    let file = repo().join("deploy/kubernetes/base/scimwatch.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let deployment = read("deploy/kubernetes/base/deployment.yaml");
    // Every secret the config names by `*_env` comes from the Secret, by reference.
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim().ends_with("_env") {
            let var = value.split('#').next().unwrap().trim().trim_matches('"');
            assert!(
                deployment.contains(&format!(
                    "- name: {var}\n              valueFrom:\n                secretKeyRef: {{name: scimwatch, key: {var}}}"
                )),
                "deployment.yaml does not take {var} from the Secret scimwatch"
            );
            vars.insert(var.to_string(), format!("dummy-{var}-0123456789abcdef"));
        }
    }
    assert!(vars.len() >= 5, "{vars:?}");
    // The pod mounts the mappings at /etc/scimwatch/mappings; here, the base's copies.
    vars.insert(
        "SCIMWATCH__MAPPINGS__DIR".into(),
        repo()
            .join("deploy/kubernetes/base/mappings")
            .display()
            .to_string(),
    );
    let cfg = scimwatch::config::load_str(&text, &file, &vars).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let names: Vec<String> = cfg.workspaces.iter().map(|w| w.name.clone()).collect();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    scimwatch::mapping::load_dir(&cfg.mappings.dir, &cfg.base_dir, &names, now).unwrap();

    // The paths and ports the manifests rely on.
    assert!(text.contains("dir = \"/etc/scimwatch/mappings\""));
    assert!(deployment.contains("mountPath: /etc/scimwatch/mappings"));
    assert!(deployment.contains("\"--config\", \"/etc/scimwatch/config/scimwatch.toml\""));
    assert!(deployment.contains("mountPath: /etc/scimwatch/config"));
    assert!(cfg.store.path.starts_with("/var/lib/scimwatch/"));
    assert!(deployment.contains("mountPath: /var/lib/scimwatch\n"));
    assert_eq!(cfg.server.listen, "0.0.0.0:9464");
    assert!(deployment.contains("containerPort: 9464"));
    assert_eq!(cfg.server.hooks_listen.as_deref(), Some("0.0.0.0:8443"));
    assert!(deployment.contains("containerPort: 8443"));
    assert!(
        cfg.server.auth_token.is_some(),
        "/status and /findings name people"
    );
    // The rules' thresholds (900 s, 1800 s) are 3 and 6 intervals of 5 minutes.
    assert_eq!(cfg.sync.interval.as_secs(), 300);
    let rules = read("deploy/prometheus/scimwatch.rules.yml");
    assert!(rules.contains("> 900 and") && rules.contains("> 1800 and"));
}

#[test]
fn the_unit_and_the_image_run_the_daemon_as_the_readme_says() {
    let unit = read("deploy/systemd/scimwatch.service");
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/scimwatch --config /etc/scimwatch/scimwatch.toml run\n"
    ));
    assert!(unit.contains("StateDirectory=scimwatch\n"));
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked --no-default-features"));
    for f in ["deploy/Dockerfile", "deploy/image-smoke.Containerfile"] {
        let text = read(f);
        assert!(text.contains("USER 65532:65532\n"), "{f}");
        assert!(text.contains("VOLUME [\"/var/lib/scimwatch\"]\n"), "{f}");
        assert!(
            text.contains("ENTRYPOINT [\"/usr/local/bin/scimwatch\"]\n"),
            "{f}"
        );
    }
}
