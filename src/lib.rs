//! scimwatch keeps a Segment workspace's access honest against the identity provider.
//!
//! It reads the IdP's groups (Okta or Entra ID), maps them to Segment roles and grants
//! through reviewed files in `mappings/`, reads each Segment workspace's actual Team
//! Members state, and reports every difference as a *finding*: SCIM still propagating
//! (`pending`), a stalled push or a manual override (`drift`), attributed from Segment's
//! audit trail. `../shared/spec/product.md` is the contract; `docs/` (in the repository) is
//! the user's reference: config keys, the findings schema, commands, metrics, the simulator.
//!
//! # Code map
//!
//! ```text
//! main.rs            thin: parse the CLI, start telemetry, hand over to cli.rs
//! cli.rs             arguments, exit codes and what is printed: check, validate, explain,
//!                    report, plan, apply, run, changes (verify), store (backup), alerts
//!                    test, sim, demo.
//!                    Nothing imports it.
//! app.rs             the composition root: load config and mappings, build the IdP and
//!                    Segment clients (`Session`), `check` (the all-or-nothing read, then
//!                    `reconcile::evaluate_pass`), `validate_loaded`, `unrouted_critical`
//! error.rs           the ground floor: `chain` (an error and its causes on one line) and
//!                    `ErrorClass` with the one status → class function every client uses
//! secret.rs          `Secret`: Debug/Display `***`, `expose()` only where it goes on the wire
//! redact.rs          remote text is an excerpt (short, no control characters) and every
//!                    configured secret value is masked wherever text leaves the process
//! telemetry.rs       tracing setup (logs on stderr as text or JSON; stdout is for results);
//!                    findings are logged at INFO under `scimwatch::finding`, never ERROR
//! daemon/            `run`, wiring only: build the components and the task, serve HTTP,
//!                    start the triggers and alert workers, the activator loop (one
//!                    activation at a time, deadlines, the retry floor), signals, shutdown;
//!                    supervise.rs (a task that panics or ends early, or a store that
//!                    cannot record findings, stops the daemon non-zero: no zombie)
//! task/              the reconcile task: `Reconciler::activate(reasons) -> ActivationStatus`
//!                    (read → evaluate → record → plan alerts → upkeep). mod.rs (the
//!                    activation, alert planning, publishing /findings and /status),
//!                    status.rs (the typed status: Scope, counts, source failures),
//!                    full.rs (full passes with per-workspace failure scoping: start-up,
//!                    `POST /-/full-pass`, stale checkpoints), targeted.rs (event-woken
//!                    passes and ticks that re-read only what the events, the open
//!                    findings and the refresh plan name; Okta only, Entra runs full passes), entra.rs (provisioning-job quarantine as
//!                    an unavailable source, provisioning-log evidence on stalled findings),
//!                    enforce.rs ([enforce] plan/apply), upkeep.rs (retention and the
//!                    change log's head: after full passes, after passes that changed
//!                    something, at least hourly), refresh.rs (the rolling-refresh
//!                    planner, pure), tick.rs (the periodic tick around it: subjects and
//!                    costs from the kept snapshots, last-read times in the store, the
//!                    `/status` refresh section). Never imports `daemon/`.
//! metrics.rs         Prometheus text, by hand; never a person in a label
//! model.rs           our vocabulary: Email, Grant, IdP and Segment snapshots. No vendor JSON.
//! http.rs            the one place that retries (backon) and paces (governor + headers);
//!                    percent-encoding of query values and paths (`encode`, `encode_path`)
//! config/            scimwatch.toml: typed, strict, positions in every error
//!   strict.rs        span-keeping TOML reader: unknown keys, did-you-mean, all problems at once
//!   load.rs          scimwatch.toml → Config; secrets by reference; env overrides
//! mapping/           mappings/*.toml
//!   parse.rs         files → rules with file:line origins, cross-file checks
//!   resolve.rs       rules + catalog + IdP read → desired state (pure); grant atoms, coverage
//! idp/               trait IdentityProvider, IdpError, Idp (Okta or Entra, from the config);
//!                    knows nothing of segment/ (and the reverse)
//!   okta/            mod.rs (reads, paging), auth.rs (SSWS, private_key_jwt, DPoP),
//!                    policy.rs (X-Rate-Limit-*), wire.rs (DTOs)
//!   azure/           Microsoft Graph: mod.rs (groups, direct members, nested groups,
//!                    directory audits, nextLink paging), auth.rs (client secret or
//!                    certificate assertion), policy.rs (Retry-After, RU percentage), wire.rs,
//!                    delta.rs (groups/delta rounds, resets, subscriptions), provisioning.rs
//!                    (job status, provisioning-log evidence)
//! segment/           client.rs (reads, envelopes, cursors, typed errors, the permission
//!                    writes), policy.rs (X-RateLimit-*, msBeforeNext), wire.rs (DTOs, the
//!                    request bodies too)
//! reconcile/         one pass
//!   finding.rs       Finding, kinds, severities, stable ids
//!   diff.rs          desired vs actual → mismatches, precedence between kinds; Entra's
//!                    nested groups → nested_group_not_provisioned (pure)
//!   classify/        mismatches + IdP events + audit trail + now → findings (pure):
//!                    mod.rs (state, attribution, sentences), scim.rs, grants.rs,
//!                    governance.rs (exception_expiring, personal_account, too_many_owners)
//!   access.rs        who holds what in a workspace and where each grant comes from (pure)
//!   consistency.rs   workspace_inconsistent: the one check across workspaces, a pure
//!                    function over the per-workspace evaluations
//!   suppress.rs      an unresolved IdP group name holds back the findings it causes
//!                    (unmapped_group of its carrier, unmanaged_user of its members) and
//!                    lists them on its mapping_unresolved (pure); did-you-mean for IdP names
//!   mod.rs           `evaluate` (one workspace) and `evaluate_pass` (every workspace a
//!                    pass read, then the consistency check): the one evaluation `check`
//!                    and the daemon share; `Settings::from_config`
//!   read.rs          read everything (IO), all or nothing, refuse partial data (with the
//!                    nested groups Entra reports); every command and full pass reads here
//!   history.rs       what the daemon remembers → inputs for the core (pure): observed IdP
//!                    changes, first-seen times, the change log between two snapshots and
//!                    the tickets/justifications behind each change
//!   tests/report.rs  the access review's numbers and its Markdown/CSV snapshots
//!   tests.rs         the table tests of the pure core, snapshots of what people read
//!   tests/governance.rs  exceptions at every expiry boundary, hygiene, consistency,
//!                    the explain value and its snapshots
//! triggers/          Activator (reasons coalesce), pollers.rs (System Log, audit trail),
//!                    graph.rs (Entra: groups/delta poller, subscription manager)
//! store/             SQLite via sqlx (rollback journal, no mmap, migrations/ embedded and
//!                    run at open; a store a newer binary migrated is refused): findings.rs, changes.rs
//!                    (append-only; chained appends, head, prune, verify), chain.rs (the
//!                    HMAC chain: canonical bytes, anchors, the verify walk; pure, table
//!                    tests in chain/tests.rs), checkpoints.rs, snapshots.rs, activations.rs,
//!                    backup.rs (`store backup`: VACUUM INTO a checked 0600 copy, read-only,
//!                    never migrating the live store).
//!                    Knows nothing of alerts: their tables' queries live in alert/store.rs
//! server/            router(state): /livez /readyz /metrics /status /findings, POST
//!                    /-/full-pass (operator, bearer token), hooks.rs
//!                    (Okta Event Hook receiver), graph.rs (Graph change notifications),
//!                    wire.rs (the hook and notification bodies, typed), auth.rs
//!                    (constant-time bearer/secret), limits.rs (`serve`: connection cap,
//!                    read timeouts, so a flood on the hooks leaves health answering)
//! output.rs          the text table and the JSON findings document
//! paths.rs           paths in messages as the person at the terminal finds them
//! progress.rs        progress on stderr while one-shot commands read (a terminal only)
//! ../sim/            the simulator is its own package, `scimwatch-sim` in sim/ at
//!                    the repository root (lib `scimwatch_sim`, nothing of scimwatch in
//!                    it; a dev-dependency, and optional behind the default feature
//!                    `sim`); sim/src/: lib.rs, okta.rs, systemlog.rs, oauth.rs, graph.rs
//!                    (Graph v1.0 + Entra token endpoint), graph_state.rs (the tenant),
//!                    graph_sync.rs (delta, apps and jobs, provisioning logs, subscriptions
//!                    and notification delivery), segment.rs,
//!                    segment_iam.rs, scim.rs + scim_schema.rs, push.rs, control.rs,
//!                    state.rs (one store),
//!                    seed.rs, filter.rs, cursor.rs, ratelimit.rs, http.rs, hooks.rs (Okta
//!                    Event Hook delivery), sinks.rs (PagerDuty, Slack, webhook receivers)
//! alert/             AlertSink, Alert (from a Finding), SinkError (rejected/broken/transient):
//!                    pagerduty.rs (Events v2), slack.rs (blocks), webhook.rs (Standard
//!                    Webhooks signature, rotation); plan.rs (pure: when to trigger,
//!                    resolve, digest, inhibit, source_unavailable); outbox.rs (one worker
//!                    per sink drains the store's outbox: backoff, dead letters, broken
//!                    sinks, sink_failing); store.rs (the alert tables' queries, as `impl
//!                    Store` methods: open alerts, source failure counters, outbox, broken
//!                    sinks); `alerts test` sends through the sinks directly
//! enforce/           plan and apply (issue 7): mod.rs the pure planner (mirror-group
//!                    permissions from the mappings, expired exceptions' direct grants, the
//!                    last-Owner guard, the limit) and its text/JSON; apply.rs the read that
//!                    feeds it and the executor (one replace call per group or user)
//! explain.rs         `explain <email>`: one person's access from a fresh read (pure value,
//!                    text and JSON renderings) plus the change log when the store exists
//! report/            `report`: the access review from one read and the change log (pure
//!                    value in mod.rs; render.rs Markdown and CSV; html.rs one printable
//!                    self-contained HTML file with SVG charts); tests in
//!                    reconcile/tests/report.rs and tests/it/governance.rs (Chromium → PDF)
//! demo/              (feature `sim`) the narrated scenario: the daemon in-process on the
//!                    simulator crate `scimwatch_sim`;
//!                    mod.rs (Okta), azure.rs (`demo --idp azure_ad`: Entra ID, delta, evidence)
//! ../deploy/         not code: the example config and demo seeds, the container recipes,
//!                    the systemd unit, the Kubernetes manifests, the Prometheus rules and
//!                    the Grafana dashboard (README, Install); `deploy/check` checks them with
//!                    their own tools, tests/it/deploy.rs against `/metrics` and the config
//! ```
//!
//! # Invariants
//!
//! - **No partial data becomes findings.** A pass that could not read everything it needs
//!   fails as a whole; `check` then exits 2 and prints nothing on stdout. An IdP read where
//!   every mapped group is unresolved or empty is a failure, not "everyone left".
//! - **The decision core is pure.** `mapping::resolve`, `reconcile::diff`,
//!   `reconcile::classify`, `reconcile::suppress`, `reconcile::access`,
//!   `reconcile::consistency`, `explain::build`, `report::build`, the chain walk
//!   (`store::chain`), `alert::plan` and `enforce::plan_workspace` do no IO and never read
//!   the clock: `now` is a parameter.
//! - **Vendor JSON stays at the edges.** Only `idp/*`, `segment/wire.rs` and the hook
//!   receivers' wire types in `server/` (and the simulator) know wire shapes; request
//!   bodies are built through wire types too.
//! - **Layers point one way.** Nothing imports `cli.rs`; `task/` never imports `daemon/`;
//!   `store/` never imports `alert/`; `segment/` and `idp/` never import each other (their
//!   shared words are in `error.rs`).
//! - **Retries live in `http.rs` only.** Nothing above it loops on errors — except the
//!   alert outbox, whose retries must outlive a restart: its rows are re-sent on their own
//!   schedule (`alert/outbox.rs`), and the daemon's sinks make one attempt per call.
//! - **Alerts are planned from state, not events**: the planner compares the open findings
//!   with the open alerts in the store after each pass, so a crash between recording
//!   findings and planning alerts is repaired by the next pass, and a restart re-sends
//!   nothing already delivered.
//! - **Secrets never print.** They live in `secret::Secret`, whose `Debug`/`Display` is `***`;
//!   none reaches the store.
//! - **Triggers wake, they never feed.** Every activation re-reads what it relies on from
//!   the IdP and Segment (the events' subjects; a tick adds open findings' subjects and its
//!   refresh share); no hook body is trusted.
//! - **A lost event costs latency, never correctness**: every subject is re-read at least
//!   once per `sync.full_refresh` (the rolling refresh), whatever the events say.
//! - **The change log is append-only**: no code path updates it, the only delete is
//!   retention's prune (rows below a boundary written inside the prune transaction, which
//!   also appends a chained `prune` record), and the database refuses every other update
//!   or delete. With a chain key every record is HMAC-chained inside one `BEGIN IMMEDIATE`
//!   transaction that reads the previous link; the key never reaches the database, a log
//!   line or an error.
//! - **Finding ids are stable**: SHA-256 over workspace, kind and subject, so the same
//!   problem keeps its id across passes and restarts.

pub mod alert;
pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(feature = "sim")]
pub mod demo;
pub mod enforce;
pub mod error;
pub mod explain;
pub mod http;
pub mod idp;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod output;
pub mod paths;
pub mod progress;
pub mod reconcile;
pub mod redact;
pub mod report;
pub mod secret;
pub mod segment;
pub mod server;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod triggers;
