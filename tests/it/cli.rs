//! The command line as a person meets it: help on every option, commands that would ignore
//! `--config` refuse it, completions, the man page, `--version` with the commit, JSON logs,
//! and `changes` before the daemon's first run.

use std::path::Path;
use std::process::Output;

use clap::CommandFactory as _;

fn bin(args: &[&str], config: Option<&Path>) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SCIMWATCH") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(std::process::Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config that loads without any service: inline secrets (logged as a warning), the
/// store in a folder that does not exist yet.
fn offline_config(dir: &Path) -> std::path::PathBuf {
    let mappings = dir.join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    let path = dir.join("scimwatch.toml");
    std::fs::write(
        &path,
        "[idp]\nkind = \"okta\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"okta-inline-token\"\n\n\
         [[workspace]]\nname = \"production\"\napi_url = \"http://127.0.0.1:9\"\ntoken = \"seg-inline-token\"\n\n\
         [store]\npath = \"state/scimwatch.db\"\n",
    )
    .unwrap();
    path
}

#[test]
fn every_option_and_argument_has_help_text() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() && !path.is_empty() {
            missing.push(format!("{path} (the command)"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} --{id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&scimwatch::cli::Cli::command(), "", &mut missing);
    assert!(missing.is_empty(), "no help text: {missing:#?}");
}

#[test]
fn commands_that_read_no_config_refuse_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scimwatch.toml");
    let mut cases = vec![vec!["completions", "bash"], vec!["man"]];
    if cfg!(feature = "sim") {
        cases.push(vec!["demo"]);
        cases.push(vec!["sim", "--seed", "deploy/demo-seed.toml"]);
    }
    for args in cases {
        let out = bin(&args, Some(&config));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("--config") && err.contains("is not read by this command"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn completions_and_the_man_page_cover_the_commands() {
    let out = bin(&["completions", "bash"], None);
    assert_eq!(out.status.code(), Some(0));
    let script = text(&out.stdout);
    for word in [
        "scimwatch",
        "check",
        "validate",
        "--log-format",
        "--workspace",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let out = bin(&["completions", "zsh"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("#compdef scimwatch"));
    let out = bin(&["man"], None);
    assert_eq!(out.status.code(), Some(0));
    let man = text(&out.stdout);
    assert!(
        man.contains(".TH scimwatch"),
        "{}",
        &man[..man.len().min(300)]
    );
    assert!(
        man.contains("validate") && man.contains("\\-\\-config"),
        "{man}"
    );
}

#[test]
fn version_names_the_commit() {
    let out = bin(&["--version"], None);
    assert_eq!(out.status.code(), Some(0));
    let v = text(&out.stdout);
    assert!(
        v.starts_with(&format!("scimwatch {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let commit = v
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{v}"
    );
}

#[test]
fn log_format_json_writes_one_object_a_line_and_the_flag_overrides_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(dir.path());
    // `alerts test` loads the config (an inline secret is a logged warning), then stops:
    // no sink is configured.
    let out = bin(&["--log-format", "json", "alerts", "test"], Some(&config));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let logs: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!logs.is_empty(), "{err}");
    assert!(
        logs.iter()
            .all(|l| l["level"].is_string() && l["fields"].is_object()),
        "{err}"
    );
    assert!(
        logs.iter()
            .any(|l| l["fields"]["message"] == "Config warning."),
        "{err}"
    );
    // The secret itself is never in a log.
    assert!(!err.contains("okta-inline-token"), "{err}");

    // `[log] format = "json"` in the file does the same; `--log-format text` overrides it.
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[log]\nformat = \"json\"\n");
    std::fs::write(&config, toml).unwrap();
    let out = bin(&["alerts", "test"], Some(&config));
    assert!(
        text(&out.stderr).lines().any(|l| l.starts_with('{')),
        "{}",
        text(&out.stderr)
    );
    let out = bin(&["--log-format", "text", "alerts", "test"], Some(&config));
    assert!(
        !text(&out.stderr).lines().any(|l| l.starts_with('{')),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn changes_before_the_first_run_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(dir.path());
    let out = bin(&["changes"], Some(&config));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("scimwatch changes: no store at "), "{err}");
    assert!(err.contains("`scimwatch run` creates it"), "{err}");
    assert!(!err.contains("code: 14"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        !dir.path().join("state").exists(),
        "changes created the store's folder"
    );
}

/// `sim --write-config` into a folder that does not exist yet creates it and writes the
/// config there before saying it listens.
#[cfg(feature = "sim")]
#[test]
fn sim_write_config_creates_the_missing_folder() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("not/yet/scimwatch.toml");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/demo-seed.toml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scimwatch"))
        .arg("sim")
        .arg("--seed")
        .arg(&seed)
        .args(["--listen", "127.0.0.1:0", "--write-config"])
        .arg(&target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let read = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.unwrap();
    assert!(
        line.starts_with("listening on http://127.0.0.1:"),
        "{line:?}"
    );
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.contains("[idp]"), "{written}");
}
