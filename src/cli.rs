//! The command line: `check`, `validate`, `explain`, `report`, `plan`, `apply`, `run`,
//! `changes` (`changes verify`), `store backup`, `alerts test`, `sim`, `demo`,
//! `completions`, `man`.
//!
//! Why one file (~700 lines): it is the whole surface a person types and reads (the
//! arguments, what is printed, the exit codes), and nothing else; the work behind each
//! command is in `app.rs` and the modules it builds. Nothing imports this module.
//!
//! Exit codes (product.md): `check` 0 clean, 1 drift needing action, 2 the pass could not
//! complete (one line on stderr naming what failed, nothing on stdout); `validate` 0 or 2;
//! `explain` 0 explained, 1 nobody by that email anywhere scimwatch looks (a line on
//! stderr, nothing on stdout), 2 a read failed (as `check`); `changes verify` 0 intact,
//! 1 broken, 2 cannot check; `report` 0 written, 2 a read failed (nothing written);
//! `apply` 0 applied, nothing to do or declined, 1 held or failed, 2 a read failed or no
//! terminal; `store backup` 0 written, 2 not written (no file left behind); `run`, `sim`,
//! `demo` 0 on a clean end, 2 otherwise; `sim`, `demo`, `completions` and `man` refuse
//! `--config` (exit 2), which they would not read. docs/commands.md is the table a person
//! reads.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{self, Loaded, Session};
use crate::config::Config;
use crate::error::chain;
use crate::http::RequestStats;
use crate::output;

/// `--version`: the crate version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SCIMWATCH_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "scimwatch",
    version = VERSION,
    about = "Watches Segment workspace access against the IdP and the reviewed mappings",
    after_help = "Exit codes, config keys and the findings JSON: docs/ in the repository (or `scimwatch man`)."
)]
pub struct Cli {
    /// Config file (default: $SCIMWATCH_CONFIG, else ./scimwatch.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How logs on stderr are written: text for people, or json (one object a line).
    /// Overrides `log.format` in the config.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for crate::config::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => crate::config::LogFormat::Text,
            LogFormatArg::Json => crate::config::LogFormat::Json,
        }
    }
}

impl Command {
    /// Whether the command reads the config (`--config` means something to it).
    pub fn reads_config(&self) -> bool {
        match self {
            #[cfg(feature = "sim")]
            Command::Sim { .. } | Command::Demo { .. } => false,
            Command::Completions { .. } | Command::Man => false,
            _ => true,
        }
    }

    /// The name a person typed, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run => "run",
            Command::Changes { .. } => "changes",
            Command::Check { .. } => "check",
            Command::Validate => "validate",
            Command::Plan { .. } => "plan",
            Command::Apply { .. } => "apply",
            Command::Explain { .. } => "explain",
            Command::Report { .. } => "report",
            #[cfg(feature = "sim")]
            Command::Sim { .. } => "sim",
            #[cfg(feature = "sim")]
            Command::Demo { .. } => "demo",
            Command::Alerts { .. } => "alerts",
            Command::Store { .. } => "store",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon: continuous reconcile, woken by IdP and Segment changes, with state in
    /// the store and an HTTP surface (/livez /readyz /metrics /status /findings /hooks).
    Run,
    /// Print the change log kept by `run`: every observed change of a user's access
    /// (`changes verify` walks its hash chain).
    #[command(args_conflicts_with_subcommands = true)]
    Changes {
        #[command(subcommand)]
        command: Option<ChangesCommand>,
        /// How far back: a duration ("30d", "12h") or an RFC 3339 time.
        #[arg(long, default_value = "30d")]
        since: String,
        /// csv (one row per change, with a header) or json.
        #[arg(long, value_enum, default_value_t = ChangesOutput::Csv)]
        output: ChangesOutput,
    },
    /// One pass over every workspace; prints findings; exit 0 clean, 1 drift, 2 failure.
    Check {
        /// text (a table for people) or json (the document of docs/findings.md).
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Only this workspace (its `name` in the config).
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Load the config and mappings and resolve every name against the live services.
    Validate,
    /// The changes that would make every mirror group's permissions equal to its mapping
    /// (and, with `enforce.revert_expired`, take back the direct grants of expired
    /// exceptions). Exit 0 nothing to do, 1 something to do, 2 the read failed.
    Plan {
        /// Only this workspace (its `name` in the config).
        #[arg(long)]
        workspace: Option<String>,
        /// text (a readable diff) or json.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show the plan, ask for confirmation (unless --yes), write it through Segment's
    /// replace-permissions endpoints, re-read. Exit 0 all applied, nothing to do or
    /// declined ("Nothing applied."), 1 something held or failed, 2 the read failed or
    /// there was no terminal to confirm on.
    Apply {
        /// Only this workspace (its `name` in the config).
        #[arg(long)]
        workspace: Option<String>,
        /// Do not ask: needed when there is no terminal to ask on.
        #[arg(long)]
        yes: bool,
    },
    /// One person's access, per workspace: IdP status and groups, the mapping rules hit,
    /// grants expected and held (with their source), exceptions, open findings, the last
    /// changes. Exit 0 explained, 1 unknown person, 2 a read failed.
    Explain {
        /// The person's email (the attribute Segment knows them by).
        email: String,
        /// text or json.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The access review: per workspace, every member with their effective grants and
    /// sources, Owners and their justification, over-privileged and personal accounts,
    /// open findings, exceptions, propagation latency. Exit 0 written, 2 a read failed.
    Report {
        /// html (one printable file), md or csv.
        #[arg(long, value_enum)]
        format: ReportFormat,
        /// The file to write (replaced when it exists).
        #[arg(long)]
        out: PathBuf,
        /// Only this workspace (its `name` in the config).
        #[arg(long)]
        workspace: Option<String>,
        /// The change-log window for the latency figures: a duration ("90d") or an RFC
        /// 3339 time.
        #[arg(long, default_value = "90d")]
        since: String,
    },
    /// The simulator: Okta, Entra ID, Segment and the alert receivers on one local
    /// address, with a control API (docs/sim.md). Runs until SIGINT or SIGTERM.
    #[cfg(feature = "sim")]
    Sim {
        /// The company to simulate (TOML), e.g. deploy/demo-seed.toml.
        #[arg(long, value_name = "FILE")]
        seed: PathBuf,
        /// The address to serve everything on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: String,
        /// Write a scimwatch.toml that points at this simulator (its folder is created).
        #[arg(long, value_name = "FILE")]
        write_config: Option<PathBuf>,
        /// The mappings folder the written config names (made absolute).
        #[arg(long, default_value = "mappings", value_name = "DIR")]
        mappings: PathBuf,
        /// The IdP `--write-config` points at when the seed has both [okta] and [azure].
        #[arg(long, value_enum)]
        idp: Option<IdpArg>,
    },
    /// A narrated scenario on the embedded simulator.
    #[cfg(feature = "sim")]
    Demo {
        /// The IdP the scenario runs on (default okta).
        #[arg(long, value_enum)]
        idp: Option<IdpArg>,
    },
    /// The store: `store backup FILE` copies it while the daemon runs.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Alert sinks: `alerts test` sends a labelled test alert through each.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Print a shell completion script, e.g.
    /// `scimwatch completions bash > /etc/bash_completion.d/scimwatch`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `scimwatch man > /usr/local/share/man/man1/scimwatch.1`.
    Man,
}

#[derive(Subcommand, Debug)]
pub enum ChangesCommand {
    /// Walk the change log's HMAC chain and report the first broken link; exit 0 intact,
    /// 1 broken, 2 cannot check (no chain key, another key, nothing chained, no store).
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy the store (`store.path`) into FILE, consistent as of one commit, while the
    /// daemon runs; the copy is checked, created 0600, and never replaces a file. Restore
    /// by stopping the daemon and putting the copy at `store.path`. Exit 0 written, 2 not.
    Backup {
        /// The file to write (it must not exist; its folder must), or `-` for standard
        /// output (`kubectl exec … store backup - > FILE`).
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Send a clearly-labelled test alert (and its resolve) through each configured sink;
    /// exit 0 when every sink accepted both, 1 otherwise, 2 when the config does not load.
    Test {
        /// Only this sink (its `name` in [[alerts.sink]]).
        #[arg(long)]
        sink: Option<String>,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdpArg {
    Okta,
    #[value(name = "azure_ad")]
    AzureAd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChangesOutput {
    Json,
    Csv,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Html,
    Md,
    Csv,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Runs the command and returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    if let (Some(path), false) = (&cli.config, cli.command.reads_config()) {
        eprintln!(
            "scimwatch {}: --config {} is not read by this command; remove it{}",
            cli.command.name(),
            path.display(),
            if cli.command.name() == "sim" {
                " (the simulator writes a config with --write-config instead)"
            } else {
                ""
            }
        );
        return 2;
    }
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "scimwatch", &mut std::io::stdout());
            0
        }
        Command::Man => {
            use clap::CommandFactory as _;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("scimwatch man: {e}");
                    2
                }
            }
        }
        Command::Check { output, workspace } => {
            check(cli.config.as_deref(), output, workspace.as_deref()).await
        }
        Command::Validate => validate(cli.config.as_deref()).await,
        Command::Plan { workspace, output } => {
            plan(cli.config.as_deref(), workspace.as_deref(), output).await
        }
        Command::Apply { workspace, yes } => {
            apply(cli.config.as_deref(), workspace.as_deref(), yes).await
        }
        Command::Report {
            format,
            out,
            workspace,
            since,
        } => match report(
            cli.config.as_deref(),
            format,
            &out,
            workspace.as_deref(),
            &since,
        )
        .await
        {
            Ok(summary) => {
                eprintln!("{summary}");
                0
            }
            Err(e) => {
                eprintln!("scimwatch report: {}", chain(e.as_ref()));
                2
            }
        },
        Command::Explain { email, output } => explain(cli.config.as_deref(), &email, output).await,
        #[cfg(feature = "sim")]
        Command::Sim {
            seed,
            listen,
            write_config,
            mappings,
            idp,
        } => match sim_config_folder(write_config.as_deref()) {
            Err(e) => {
                eprintln!("scimwatch sim: {e}");
                2
            }
            Ok(()) => match scimwatch_sim::run_cli(
                &seed,
                &listen,
                write_config.as_deref(),
                &mappings,
                idp.map(|i| match i {
                    IdpArg::Okta => scimwatch_sim::IdpKind::Okta,
                    IdpArg::AzureAd => scimwatch_sim::IdpKind::AzureAd,
                }),
            )
            .await
            {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("scimwatch sim: {}", chain(e.as_ref()));
                    2
                }
            },
        },
        #[cfg(feature = "sim")]
        Command::Demo { idp } => match match idp {
            Some(IdpArg::AzureAd) => crate::demo::azure::run().await,
            _ => crate::demo::run().await,
        } {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("scimwatch demo: {}", chain(e.as_ref()));
                2
            }
        },
        Command::Run => match run(cli.config.as_deref()).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("scimwatch run: {}", chain(e.as_ref()));
                2
            }
        },
        Command::Alerts {
            command: AlertsCommand::Test { sink },
        } => alerts_test(cli.config.as_deref(), sink.as_deref()).await,
        Command::Store {
            command: StoreCommand::Backup { file },
        } => match store_backup(cli.config.as_deref(), &file).await {
            Ok(line) => {
                eprintln!("{line}");
                0
            }
            Err(e) => {
                eprintln!("scimwatch store backup: {}", chain(e.as_ref()));
                2
            }
        },
        Command::Changes {
            command: Some(ChangesCommand::Verify),
            ..
        } => changes_verify(cli.config.as_deref()).await,
        Command::Changes {
            command: None,
            since,
            output,
        } => match changes(cli.config.as_deref(), &since, output).await {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("scimwatch changes: {}", chain(e.as_ref()));
                2
            }
        },
    }
}

/// `sim --write-config FILE`: creates the file's folder when it is missing, so the error,
/// if any, names the folder and what to do.
#[cfg(feature = "sim")]
fn sim_config_folder(write_config: Option<&Path>) -> Result<(), String> {
    let Some(dir) = write_config
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
    else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "--write-config: cannot create the folder {} ({e}); pick a folder this user may write",
            dir.display()
        )
    })
}

async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let Loaded { config, mappings } = app::load(config)?;
    crate::daemon::main(config, mappings).await
}

async fn changes(
    config: Option<&Path>,
    since: &str,
    output: ChangesOutput,
) -> anyhow::Result<String> {
    let config = crate::config::load(config)?;
    let since = crate::store::parse_since(since, Utc::now())
        .map_err(|e| anyhow::anyhow!("--since {since:?}: {e}"))?;
    // Never create an empty store here: a wrong path must not read as "no changes".
    let store = crate::store::Store::open_existing(&config.store.path).await?;
    let records = store.changes_since(since).await?;
    Ok(match output {
        ChangesOutput::Csv => crate::store::changes_csv(&records),
        ChangesOutput::Json => crate::store::changes_json(&records),
    })
}

/// `scimwatch store backup FILE`: the copy, and the line printed on stderr.
async fn store_backup(config: Option<&Path>, file: &Path) -> anyhow::Result<String> {
    let config = crate::config::load(config)?;
    let to_stdout = file == Path::new("-");
    let s = if to_stdout {
        let mut out = std::io::stdout();
        crate::store::backup_to_writer(&config.store.path, &mut out).await?
    } else {
        crate::store::backup(&config.store.path, file).await?
    };
    let dest = if to_stdout {
        "standard output".to_string()
    } else {
        s.path.display().to_string()
    };
    Ok(format!(
        "Backed up {} to {dest} ({} bytes, schema version {}): {} change-log records, {} open findings, integrity ok, in {} ms (the live store read for {} ms).",
        config.store.path.display(),
        s.bytes,
        s.schema_version,
        s.changes,
        s.open_findings,
        s.took.as_millis(),
        s.held.as_millis()
    ) + &slow_backup_note(s.held))
}

/// The daemon's commits wait for a backup's read of the live store and give up after the
/// store's 5 s busy timeout: say so when a copy came close.
fn slow_backup_note(held: std::time::Duration) -> String {
    if held < std::time::Duration::from_millis(2500) {
        return String::new();
    }
    format!(
        " The copy read the live store for {:.1} s; the daemon's commits wait for it and give up after 5 s: back up a store this large from a stopped daemon or a file-system snapshot.",
        held.as_secs_f64()
    )
}

/// `scimwatch report`: reads everything like `check` (all or nothing), builds the review
/// and writes it to `out` (through a temporary file beside it, so a failed run never
/// leaves half a report). Returns the line printed on stderr.
async fn report(
    config: Option<&Path>,
    format: ReportFormat,
    out: &Path,
    only: Option<&str>,
    since: &str,
) -> anyhow::Result<String> {
    let now = Utc::now();
    let since_t = crate::store::parse_since(since, now)
        .map_err(|e| anyhow::anyhow!("--since {since:?}: {e}"))?;
    let session = Session::open(config, only)?;
    let progress = crate::progress::Progress::attach(&session.stats);
    let review = crate::report::gather(
        &session.config,
        &session.selected(),
        &session.mappings,
        &session.idp,
        &session.settings,
        since_t,
        now,
    )
    .await?;
    drop(progress);
    let text = match format {
        ReportFormat::Html => crate::report::html::html(&review),
        ReportFormat::Md => crate::report::render::markdown(&review),
        ReportFormat::Csv => crate::report::render::csv(&review),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, &text)
        .with_context(|| format!("writing the report to {}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving the report into place at {}", out.display()))?;
    let findings: usize = review.workspaces.iter().map(|w| w.findings.len()).sum();
    Ok(format!(
        "Wrote {} ({} bytes): {} workspaces, {findings} open findings.",
        out.display(),
        text.len(),
        review.workspaces.len()
    ))
}

/// `scimwatch changes verify`: one line on stdout for intact or broken; "cannot check"
/// on stderr.
async fn changes_verify(config: Option<&Path>) -> i32 {
    let cannot = |why: String| {
        eprintln!("scimwatch changes verify: cannot check: {why}");
        2
    };
    let config = match crate::config::load(config) {
        Ok(c) => c,
        Err(e) => return cannot(chain(&e)),
    };
    let Some(secret) = &config.store.chain_key else {
        return cannot(
            "no chain key is configured; set [store] chain_key_env (or chain_key_file) to the key the daemon chains the log with".into(),
        );
    };
    let key = crate::store::ChainKey::new(secret);
    let store = match crate::store::Store::open_existing(&config.store.path).await {
        Ok(s) => s,
        Err(e) => return cannot(chain(&e)),
    };
    let started = std::time::Instant::now();
    let verdict = match store.changes_verify(&key).await {
        Ok(v) => v,
        Err(e) => return cannot(chain(&e)),
    };
    let took = started.elapsed();
    match verdict {
        crate::store::Verdict::Intact(s) => {
            let head = match &s.head {
                Some((id, mac)) => format!("; head: record {id}, MAC {mac}"),
                None => String::new(),
            };
            let pruned = match s.pruned_from {
                Some((record, start)) => {
                    format!("; pruned by record {record}, the log starts at record {start}")
                }
                None => String::new(),
            };
            println!(
                "intact: {} records, {} chained, {} unchained ones committed to by an anchor{pruned}{head} (key id {}, {} ms)",
                s.rows,
                s.chained,
                s.anchored,
                key.id(),
                took.as_millis()
            );
            0
        }
        crate::store::Verdict::Broken { id, at, what } => {
            let at = if at.is_empty() {
                String::new()
            } else {
                format!(" ({at})")
            };
            println!("BROKEN at record {id}{at}: {what}");
            1
        }
        crate::store::Verdict::CannotCheck(why) => cannot(why),
    }
}

async fn check(config: Option<&Path>, out: Output, only: Option<&str>) -> i32 {
    match check_inner(config, only).await {
        Ok(report) => {
            match out {
                Output::Json => println!("{}", output::json(&report)),
                Output::Text => print!("{}", output::text(&report)),
            }
            report.exit_code()
        }
        Err(e) => {
            eprintln!("scimwatch check: {}", chain(e.as_ref()));
            2
        }
    }
}

async fn check_inner(config: Option<&Path>, only: Option<&str>) -> anyhow::Result<output::Report> {
    let session = Session::open(config, only)?;
    let _progress = crate::progress::Progress::attach(&session.stats);
    let report = session.check(Utc::now()).await?;
    tracing::info!(requests = ?session.stats.by_service(), "Pass complete.");
    Ok(report)
}

/// Everything `plan` and `apply` need, read once.
struct Planned {
    session: Session,
    plans: Vec<crate::enforce::WorkspacePlan>,
}

async fn planned(config: Option<&Path>, only: Option<&str>) -> anyhow::Result<Planned> {
    let session = Session::open(config, only)?;
    let _progress = crate::progress::Progress::attach(&session.stats);
    let opts = crate::enforce::Options {
        max_changes: session.config.enforce.max_changes,
        revert_expired: session.config.enforce.revert_expired,
    };
    let plans = crate::enforce::apply::plan_all(
        &session.idp,
        &session.selected(),
        &session.mappings,
        &session.settings,
        opts,
        Utc::now(),
    )
    .await?;
    Ok(Planned { session, plans })
}

async fn plan(config: Option<&Path>, only: Option<&str>, out: Output) -> i32 {
    match planned(config, only).await {
        Ok(p) => {
            match out {
                Output::Json => println!("{:#}", crate::enforce::render_json(&p.plans)),
                Output::Text => print!("{}", crate::enforce::render_text(&p.plans, true)),
            }
            if p.plans.iter().all(|w| w.is_empty()) {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("scimwatch plan: {}", chain(e.as_ref()));
            2
        }
    }
}

async fn apply(config: Option<&Path>, only: Option<&str>, yes: bool) -> i32 {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let p = match planned(config, only).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("scimwatch apply: {}", chain(e.as_ref()));
            return 2;
        }
    };
    print!("{}", crate::enforce::render_text(&p.plans, false));
    let writes: usize = p.plans.iter().map(|w| w.writable().count()).sum();
    let held: usize = p.plans.iter().map(|w| w.held().count()).sum();
    if writes == 0 {
        println!("Nothing to apply.");
        return if held > 0 { 1 } else { 0 };
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("scimwatch apply: no terminal to confirm on; run with --yes to apply without asking. Nothing was written.");
            return 2;
        }
        print!(
            "Apply {writes} write{} to Segment? [y/N] ",
            if writes == 1 { "" } else { "s" }
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            // Declining is an answer, not a failure.
            println!("Nothing applied.");
            return 0;
        }
    }
    let mut applied = Vec::new();
    for plan in &p.plans {
        let Some(client) = p
            .session
            .workspaces
            .iter()
            .find(|(w, _)| w.name == plan.workspace)
            .map(|(_, c)| c)
        else {
            continue;
        };
        applied.push(crate::enforce::apply::apply_workspace(client, plan).await);
    }
    print!("{}", crate::enforce::apply::render_applied(&applied));
    // Re-read: what now matches.
    let after = match planned(config, only).await {
        Ok(after) => after,
        Err(e) => {
            eprintln!(
                "scimwatch apply: written, but the verifying re-read failed: {}",
                chain(e.as_ref())
            );
            return 2;
        }
    };
    for w in &after.plans {
        let writable = w.writable().count();
        if writable == 0 {
            println!("workspace {}: now matches the mappings", w.workspace);
        } else {
            println!(
                "workspace {}: still differs in {writable} group(s) or user(s); run `scimwatch plan`",
                w.workspace
            );
        }
    }
    let clean = applied.iter().all(|a| a.all_applied())
        && after
            .plans
            .iter()
            .all(|w| w.writable().count() == 0 && w.held().count() == 0);
    if clean {
        0
    } else {
        1
    }
}

async fn explain(config: Option<&Path>, email: &str, out: Output) -> i32 {
    let email = crate::model::Email::new(email);
    if !email.as_str().contains('@') {
        eprintln!("scimwatch explain: {email:?} is not an email address; give the person's email, like ana@acme.com");
        return 2;
    }
    match explain_inner(config, &email).await {
        Ok(e) if !e.known() => {
            eprintln!(
                "scimwatch explain: nobody with the email {email}: {} has no such user, no workspace has them as a member, and no mapping names them",
                e.idp.kind.display()
            );
            1
        }
        Ok(e) => {
            match out {
                Output::Json => println!("{}", crate::explain::json(&e)),
                Output::Text => print!("{}", crate::explain::text(&e)),
            }
            0
        }
        Err(e) => {
            eprintln!("scimwatch explain: {}", chain(e.as_ref()));
            2
        }
    }
}

async fn explain_inner(
    config: Option<&Path>,
    email: &crate::model::Email,
) -> anyhow::Result<crate::explain::Explanation> {
    let session = Session::open(config, None)?;
    let _progress = crate::progress::Progress::attach(&session.stats);
    Ok(crate::explain::gather(
        email,
        &session.config,
        &session.mappings,
        &session.idp,
        &session.clients(),
        &session.settings,
        Utc::now(),
    )
    .await?)
}

async fn validate(config: Option<&Path>) -> i32 {
    match validate_inner(config).await {
        Ok((v, idp)) if v.problems.is_empty() => {
            println!("{}", v.summary(idp));
            0
        }
        Ok((v, _)) => {
            for p in v.problems {
                eprintln!("{p}");
            }
            2
        }
        Err(e) => {
            eprintln!("scimwatch validate: {}", chain(e.as_ref()));
            2
        }
    }
}

/// Loads everything and resolves every name against the live catalogs and the IdP; the
/// warnings go to stderr at once.
async fn validate_inner(config: Option<&Path>) -> anyhow::Result<(app::Validated, &'static str)> {
    let session = Session::open(config, None)?;
    for w in app::unrouted_critical(&session.config) {
        eprintln!("warning: {w}");
    }
    let _progress = crate::progress::Progress::attach(&session.stats);
    let v = app::validate_loaded(
        &session.config,
        &session.mappings,
        &session.idp,
        &session.clients(),
    )
    .await?;
    Ok((v, session.config.idp.kind.display()))
}

/// `scimwatch alerts test`: loads only the config, then per sink a test trigger and its
/// resolve; one line per sink on stdout.
async fn alerts_test(config: Option<&Path>, only: Option<&str>) -> i32 {
    let config = match crate::config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scimwatch alerts test: {}", chain(&e));
            return 2;
        }
    };
    for w in &config.warnings {
        tracing::warn!(warning = %w, "Config warning.");
    }
    let alerts = &config.alerts;
    if alerts.sinks.is_empty() {
        eprintln!("scimwatch alerts test: no [[alerts.sink]] in the config; add one");
        return 2;
    }
    if let Some(name) = only {
        if alerts.sink(name).is_none() {
            let known: Vec<&str> = alerts.sinks.iter().map(|s| s.name.as_str()).collect();
            let hint = crate::config::strict::did_you_mean(name, known.iter().copied())
                .map(|h| format!(" (did you mean {h:?}?)"))
                .unwrap_or_default();
            eprintln!(
                "scimwatch alerts test: --sink {name:?}: no such sink{hint}; sinks: {}",
                known.join(", ")
            );
            return 2;
        }
    }
    let sinks = crate::alert::build_sinks(
        alerts,
        crate::alert::retry_config(alerts),
        RequestStats::new(),
    );
    let now = Utc::now();
    let trigger = crate::alert::Alert::test(crate::alert::Action::Trigger, now);
    let resolve = crate::alert::Alert::test(crate::alert::Action::Resolve, now);
    let mut all_ok = true;
    for sink in sinks.iter().filter(|s| only.is_none_or(|n| n == s.name())) {
        let t = sink.send(&trigger).await;
        let r = sink.send(&resolve).await;
        let show = |res: &Result<crate::alert::Delivered, crate::alert::SinkError>| match res {
            Ok(d) => d.status.to_string(),
            Err(e) => e
                .status()
                .map_or("no answer".to_string(), |s| s.to_string()),
        };
        let verdict = match (&t, &r) {
            (Ok(_), Ok(_)) => "ok".to_string(),
            (Err(e), _) | (Ok(_), Err(e)) => {
                all_ok = false;
                format!("FAILED: {e}")
            }
        };
        println!(
            "{} ({}): trigger {}, resolve {} — {verdict}",
            sink.name(),
            sink.kind(),
            show(&t),
            show(&r)
        );
        if t.is_ok() && r.is_ok() {
            clear_broken(&config, sink.name()).await;
        }
    }
    if all_ok {
        0
    } else {
        1
    }
}

/// A passing `alerts test` puts a sink the daemon marked broken back in service (the
/// running daemon notices within seconds). No store yet: nothing to clear.
async fn clear_broken(config: &Config, sink: &str) {
    let Ok(store) = crate::store::Store::open_existing(&config.store.path).await else {
        return;
    };
    match store.sinks_broken().await {
        Ok(b) if b.iter().any(|b| b.name == sink) => {
            match store.sink_clear_broken(Some(sink)).await {
                Ok(()) => println!("{sink}: was marked broken by the daemon; delivery resumes"),
                Err(e) => eprintln!(
                    "{sink}: cannot clear its broken mark in the store: {}",
                    chain(&e)
                ),
            }
        }
        _ => {}
    }
}
