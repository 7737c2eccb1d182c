//! The documentation in `docs/` and the README: links stay inside the repository, the
//! reference pages name what the code has (metrics, commands), the complete config example
//! loads, and real `check --output json` output validates against `docs/findings.schema.json`.
//!
//! The schema is checked with a small validator for exactly the JSON Schema keywords the
//! file uses (below). Cargo.lock has no JSON Schema crate, and the ones that exist pull in a
//! regex engine, an HTTP client for remote `$ref`s and more; the validator panics on any
//! keyword it does not implement, so the schema cannot grow a rule that goes unchecked.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `](target)` of a Markdown text, fenced code blocks left out.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// `path` with `.` and `..` folded, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The problems with the relative links of one Markdown file: a link that leaves the
/// repository or names a file that does not exist.
fn link_problems(file: &Path, text: &str) -> Vec<String> {
    let root = normalize(&repo());
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    for target in links(text) {
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
            || target.starts_with('#')
        {
            continue;
        }
        let path = target.split('#').next().unwrap_or_default();
        let resolved = normalize(&dir.join(path));
        if !resolved.starts_with(&root) {
            problems.push(format!(
                "{}: link {target:?} points outside the repository",
                file.display()
            ));
        } else if !resolved.exists() {
            problems.push(format!(
                "{}: link {target:?} names a file that does not exist",
                file.display()
            ));
        }
    }
    problems
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).expect("docs/ exists") {
        let p = e.expect("a docs entry").path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    files.sort();
    files
}

#[test]
fn no_link_in_the_readme_or_docs_leaves_the_repository_or_dangles() {
    let mut problems = Vec::new();
    for f in markdown_files() {
        let text = std::fs::read_to_string(&f).expect("readable");
        problems.extend(link_problems(&f, &text));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_link_check_catches_a_link_outside_the_repository() {
    let file = repo().join("README.md");
    let text = "See [the spec](../shared/spec/config.md) and [docs](docs/config.md).\n\
                ```\n[not a link](../in/a/fence)\n```\n[gone](docs/nothing.md)\n";
    let problems = link_problems(&file, text);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("outside the repository"),
        "{problems:?}"
    );
    assert!(problems[1].contains("does not exist"), "{problems:?}");
}

#[test]
fn every_metric_family_is_documented() {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let text = scimwatch::metrics::Metrics::default().render(&scimwatch::http::RequestStats::new());
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.len() >= 17, "{families:?}");
    let missing: Vec<&&str> = families
        .iter()
        .filter(|f| !doc.contains(&format!("`{f}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
}

#[test]
fn every_command_has_its_exit_codes_documented() {
    use clap::CommandFactory as _;
    let doc = std::fs::read_to_string(repo().join("docs/commands.md")).unwrap();
    let cli = scimwatch::cli::Cli::command();
    let mut missing = Vec::new();
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        if !doc.contains(&format!("| `{name}")) {
            missing.push(name.to_string());
        }
        for subsub in sub.get_subcommands() {
            let full = format!("| `{name} {}", subsub.get_name());
            if !doc.contains(&full) {
                missing.push(full);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no exit-code row in docs/commands.md for {missing:?}"
    );
}

/// The fenced TOML blocks of a Markdown file.
fn toml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => cur = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => out.extend(cur.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn the_complete_config_example_in_the_docs_loads() {
    let doc = std::fs::read_to_string(repo().join("docs/config.md")).unwrap();
    let complete = toml_blocks(&doc)
        .into_iter()
        .find(|b| b.contains("[log]") && b.contains("[alerts]"))
        .expect("docs/config.md has the complete example");
    let env: std::collections::BTreeMap<String, String> = [
        ("OKTA_API_TOKEN", "00okta-dummy-token"),
        ("SEGMENT_PRODUCTION_TOKEN", "sgp_dummy_production"),
        ("OKTA_HOOK_SECRET", "dummy-hook-secret-0123456789"),
        ("SCIMWATCH_CHAIN_KEY", "dummy-chain-key-0123456789"),
        ("SCIMWATCH_API_TOKEN", "dummy-api-token-0123456789"),
        ("PD_ROUTING_KEY", "R0123456789abcdef0123456789abcdef"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg =
        scimwatch::config::load_str(&complete, Path::new("/etc/scimwatch/scimwatch.toml"), &env)
            .unwrap_or_else(|e| panic!("the documented example does not load: {e}"));
    assert_eq!(cfg.alerts.sinks.len(), 1);
    assert_eq!(cfg.log.format, scimwatch::config::LogFormat::Text);
    // Every section of the reference is in the complete example.
    for section in [
        "[idp]",
        "[[workspace]]",
        "[mappings]",
        "[sync]",
        "[triggers]",
        "[enforce]",
        "[store]",
        "[server]",
        "[log]",
        "[policy]",
        "[alerts]",
        "[[alerts.sink]]",
        "[[alerts.route]]",
    ] {
        assert!(
            complete.contains(section),
            "{section} missing from the complete example"
        );
    }
}

// ---- A validator for the JSON Schema keywords docs/findings.schema.json uses ----

fn resolve<'a>(root: &'a Value, r: &str) -> &'a Value {
    let path = r
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("only local $ref: {r}"));
    path.split('/').fold(root, |v, k| &v[k])
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

/// `^[0-9a-f]{N}$`, the one pattern the schema uses.
fn hex_pattern(p: &str, s: &str) -> bool {
    let n: usize = p
        .strip_prefix("^[0-9a-f]{")
        .and_then(|r| r.strip_suffix("}$"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unsupported pattern {p}"));
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        panic!("schema at {at} is not an object");
    };
    for (k, s) in obj {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" | "$defs" => {}
            "$ref" => validate(root, resolve(root, s.as_str().unwrap()), v, at, errors),
            "type" => {
                let ok = match s {
                    Value::String(t) => type_matches(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
                    _ => panic!("bad type at {at}"),
                };
                if !ok {
                    errors.push(format!("{at}: {v} is not of type {s}"));
                }
            }
            "const" if v != s => errors.push(format!("{at}: {v} is not {s}")),
            "const" => {}
            "enum" => {
                if !s.as_array().unwrap().contains(v) {
                    errors.push(format!("{at}: {v} is not one of {s}"));
                }
            }
            "required" => {
                for r in s.as_array().unwrap() {
                    let r = r.as_str().unwrap();
                    if v.is_object() && v.get(r).is_none() {
                        errors.push(format!("{at}: missing {r}"));
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in s.as_object().unwrap() {
                        if let Some(x) = o.get(name) {
                            validate(root, sub, x, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                let known = obj.get("properties").and_then(Value::as_object);
                if let Some(o) = v.as_object() {
                    for (name, x) in o {
                        if known.is_none_or(|k| !k.contains_key(name)) {
                            validate(root, s, x, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "propertyNames" => {
                if let Some(o) = v.as_object() {
                    for name in o.keys() {
                        validate(root, s, &Value::String(name.clone()), &format!("{at} key {name}"), errors);
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, x) in a.iter().enumerate() {
                        validate(root, s, x, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            "oneOf" => {
                let passing = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        validate(root, sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing != 1 {
                    errors.push(format!("{at}: {v} matches {passing} of oneOf {s}"));
                }
            }
            "minimum" => {
                if v.as_f64().is_some_and(|x| x < s.as_f64().unwrap()) {
                    errors.push(format!("{at}: {v} < {s}"));
                }
            }
            "minLength" => {
                if v.as_str().is_some_and(|x| (x.chars().count() as u64) < s.as_u64().unwrap()) {
                    errors.push(format!("{at}: shorter than {s}"));
                }
            }
            "pattern" => {
                if v.as_str().is_some_and(|x| !hex_pattern(s.as_str().unwrap(), x)) {
                    errors.push(format!("{at}: {v} does not match {s}"));
                }
            }
            "format" => {
                assert_eq!(s, "date-time", "unsupported format at {at}");
                if v.as_str().is_some_and(|x| chrono::DateTime::parse_from_rfc3339(x).is_err()) {
                    errors.push(format!("{at}: {v} is not an RFC 3339 time"));
                }
            }
            other => panic!("the test's validator does not implement `{other}` (at {at}); implement it before the schema uses it"),
        }
    }
}

fn schema() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/findings.schema.json")).unwrap();
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// The schema's errors for `doc`.
pub fn schema_errors(doc: &Value) -> Vec<String> {
    let s = schema();
    let mut errors = Vec::new();
    validate(&s, &s, doc, "$", &mut errors);
    errors
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let good: Value = serde_json::from_str(
        r#"{"schema":1,"generated_at":"2026-11-26T22:00:00Z","idp":"okta","workspaces":[],
            "summary":{"drift":0,"pending":0,"by_kind":{}},"findings":[]}"#,
    )
    .unwrap();
    assert_eq!(schema_errors(&good), Vec::<String>::new());
    let mut bad = good.clone();
    bad["idp"] = "google".into();
    bad["summary"]["by_kind"]["no_such_kind"] = 1.into();
    bad["findings"] = serde_json::json!([{"id": "XYZ", "kind": "direct_grant"}]);
    let errors = schema_errors(&bad);
    assert!(errors.iter().any(|e| e.contains("$.idp")), "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.contains("no_such_kind")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("missing state")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("does not match")),
        "{errors:#?}"
    );
}

#[test]
fn the_snapshot_of_the_json_document_validates_against_the_schema() {
    let text =
        std::fs::read_to_string(repo().join(
            "src/reconcile/snapshots/scimwatch__reconcile__tests__json_document_snapshot.snap",
        ))
        .unwrap();
    // An insta snapshot: a `---` header, then the value.
    let body = text.splitn(3, "---\n").nth(2).expect("an insta snapshot");
    let doc: Value = serde_json::from_str(body).unwrap();
    assert!(doc["findings"].as_array().is_some_and(|f| f.len() >= 5));
    assert_eq!(schema_errors(&doc), Vec::<String>::new());
}
