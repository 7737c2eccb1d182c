//! The composition root: loads the config and the mappings and builds the clients every
//! command works with. `cli.rs` parses arguments, calls into here and prints; the daemon,
//! the demo and the tests build from the same pieces. Nothing here prints: what a person
//! reads is the CLI's (or the demo's) to say.
//!
//! Contract: a [`Session`] is complete or absent. A config or mapping error, an unknown
//! `--workspace` or a client that cannot be built (a credential of the wrong kind) fails
//! [`Session::open`] before any request is sent.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{Config, WorkspaceConfig};
use crate::http::{RequestStats, RetryConfig};
use crate::idp::{IdentityProvider, Idp};
use crate::mapping::{resolve, MappingSet};
use crate::output::{Report, WorkspaceSummary};
use crate::reconcile::read::{self, PassError};
use crate::reconcile::{sort, Kind, Settings};
use crate::segment::SegmentClient;

/// Config and mappings, loaded and checked.
pub struct Loaded {
    pub config: Config,
    pub mappings: MappingSet,
}

/// Loads the config (`path`, else `$SCIMWATCH_CONFIG`, else `./scimwatch.toml`) and the
/// mappings it points at; config warnings are logged.
pub fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
    let config = crate::config::load(path)?;
    for w in &config.warnings {
        tracing::warn!(warning = %w, "Config warning.");
    }
    let known: Vec<String> = config.workspaces.iter().map(|w| w.name.clone()).collect();
    // A missing folder is named with the line of `mappings.dir` in the config.
    let mappings = crate::mapping::load_configured(&config, &known, Utc::now())?;
    Ok(Loaded { config, mappings })
}

/// The IdP client `[idp] kind` names (Okta or Entra ID).
pub fn idp(config: &Config, retry: RetryConfig, stats: Arc<RequestStats>) -> anyhow::Result<Idp> {
    Ok(Idp::new(&config.idp, retry, stats)?)
}

/// One client per workspace, in config order: every workspace, or the one `only` names
/// (an unknown name is an error that lists the known ones).
pub fn segment_clients(
    config: &Config,
    only: Option<&str>,
    retry: RetryConfig,
    stats: &Arc<RequestStats>,
) -> anyhow::Result<Vec<(WorkspaceConfig, SegmentClient)>> {
    if let Some(name) = only {
        if config.workspace(name).is_none() {
            let known: Vec<&str> = config.workspaces.iter().map(|w| w.name.as_str()).collect();
            anyhow::bail!(
                "--workspace {name:?}: no such workspace in the config (known: {})",
                known.join(", ")
            );
        }
    }
    Ok(config
        .workspaces
        .iter()
        .filter(|w| only.is_none_or(|n| n == w.name))
        .map(|w| {
            (
                w.clone(),
                SegmentClient::new(w, retry.clone(), stats.clone()),
            )
        })
        .collect())
}

/// Everything a one-shot command reads through: config, mappings, the core's settings,
/// the IdP client and one Segment client per selected workspace, sharing one request
/// counter.
pub struct Session {
    pub config: Config,
    pub mappings: MappingSet,
    pub settings: Settings,
    pub stats: Arc<RequestStats>,
    pub idp: Idp,
    /// The selected workspaces (all, or the one `--workspace` names) with their clients.
    pub workspaces: Vec<(WorkspaceConfig, SegmentClient)>,
}

impl Session {
    /// Loads and builds; `only` selects one workspace by its config name.
    pub fn open(path: Option<&Path>, only: Option<&str>) -> anyhow::Result<Session> {
        let Loaded { config, mappings } = load(path)?;
        Session::build(config, mappings, only)
    }

    /// Builds the clients for an already loaded config.
    pub fn build(
        config: Config,
        mappings: MappingSet,
        only: Option<&str>,
    ) -> anyhow::Result<Session> {
        let settings = Settings::from_config(&config)?;
        let stats = RequestStats::new();
        let idp = idp(&config, RetryConfig::default(), stats.clone())?;
        let workspaces = segment_clients(&config, only, RetryConfig::default(), &stats)?;
        Ok(Session {
            config,
            mappings,
            settings,
            stats,
            idp,
            workspaces,
        })
    }

    /// The selected workspaces as the reads take them.
    pub fn selected(&self) -> Vec<(&WorkspaceConfig, &SegmentClient)> {
        self.workspaces.iter().map(|(w, c)| (w, c)).collect()
    }

    /// The selected workspaces' clients.
    pub fn clients(&self) -> Vec<SegmentClient> {
        self.workspaces.iter().map(|(_, c)| c.clone()).collect()
    }

    /// `check`: one all-or-nothing pass over the selected workspaces.
    pub async fn check(&self, now: DateTime<Utc>) -> Result<Report, PassError> {
        check(
            &self.idp,
            &self.selected(),
            &self.mappings,
            &self.settings,
            now,
        )
        .await
    }
}

/// One pass over `workspaces` (each with its client) that returns the report. Any
/// failure fails the whole pass (the one-shot `check` contract): the read is all or
/// nothing, then the same evaluation the daemon runs ([`crate::reconcile::evaluate_pass`]).
pub async fn check<P: IdentityProvider>(
    idp: &P,
    workspaces: &[(&WorkspaceConfig, &SegmentClient)],
    mappings: &MappingSet,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Report, PassError> {
    let reading = read::read_all(idp, workspaces, mappings, settings, now).await?;
    let mut snapshots = Vec::new();
    for (_, snap) in reading.workspaces {
        snapshots.push(snap?);
    }
    let empty = Default::default();
    let read: Vec<_> = workspaces
        .iter()
        .zip(&snapshots)
        .map(|((ws, _), snap)| {
            let mapping = mappings.workspaces.get(&ws.name).unwrap_or(&empty);
            (*ws, mapping, snap)
        })
        .collect();
    let evaluated =
        crate::reconcile::evaluate_pass(&read, &reading.idp, &reading.nested, settings, None, now);
    let summaries = workspaces
        .iter()
        .zip(&snapshots)
        .map(|((ws, _), snap)| WorkspaceSummary {
            name: ws.name.clone(),
            users: snap.users.len(),
            groups: snap.groups.len(),
        })
        .collect();
    let mut findings = evaluated.into_findings();
    sort(&mut findings);
    Ok(Report {
        generated_at: now,
        idp: settings.idp,
        workspaces: summaries,
        findings,
    })
}

/// What `validate` found once the names were resolved against the live services.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Validated {
    /// One line each, naming the mapping file and line.
    pub problems: Vec<String>,
    pub workspaces: usize,
    pub groups: usize,
    pub grants: usize,
}

impl Validated {
    /// The line `validate` prints when nothing is wrong.
    pub fn summary(&self, idp: &str) -> String {
        format!(
            "OK: {} workspaces, {} mapped groups and {} grants resolve against {idp} and Segment.",
            self.workspaces, self.groups, self.grants
        )
    }
}

/// `validate` once config and mappings are loaded: resolves every mapped group, role and
/// resource against the IdP and each workspace's catalog (the demo and tests call this).
///
/// Every service is tried even when one fails, so one run names every credential that
/// does not work, each by its config key, the reason before the request. A workspace
/// that no mapping file maps a group for is a problem too: `check` would report every
/// member as unmanaged.
pub async fn validate_loaded<P: IdentityProvider>(
    config: &Config,
    mappings: &MappingSet,
    idp: &P,
    clients: &[SegmentClient],
) -> anyhow::Result<Validated> {
    let empty = Default::default();
    let refs = read::group_refs(mappings.workspaces.values());
    let file = crate::paths::shown(&config.path);
    let mut out = Validated {
        workspaces: config.workspaces.len(),
        ..Validated::default()
    };
    let groups = match idp.read_groups(&refs).await {
        Ok(g) => Some(g),
        Err(e) => {
            out.problems.push(format!(
                "{file}: {}: {}",
                config.credential_keys.idp,
                e.reason_first()
            ));
            None
        }
    };
    let found: Vec<&str> = groups
        .iter()
        .flatten()
        .filter_map(|(_, g)| match g {
            crate::model::GroupRead::Found(g) => Some(g.name.as_str()),
            crate::model::GroupRead::Unresolved { .. } => None,
        })
        .collect();
    for (ws, client) in config.workspaces.iter().zip(clients) {
        let mapping = mappings.workspaces.get(&ws.name).unwrap_or(&empty);
        if mapping.groups.is_empty() {
            out.problems.push(format!(
                "{file}: workspace {:?} has no mapped group: no file in {} maps one for it, so `check` would report every member as unmanaged_user; add a mapping file with workspace = {:?} and its [[group]]s, or remove the [[workspace]]",
                ws.name,
                crate::paths::shown(&config.mappings.dir),
                ws.name
            ));
        }
        let read = async {
            let (info, catalog) = client.read_catalog(read::catalog_needs(mapping)).await?;
            let names = client.group_names().await?;
            Ok::<_, crate::segment::SegmentError>((info, catalog, names))
        }
        .await;
        let (info, catalog, segment_groups) = match read {
            Ok(r) => r,
            Err(e) => {
                let key = config
                    .credential_keys
                    .workspaces
                    .get(&ws.name)
                    .cloned()
                    .unwrap_or_else(|| format!("[[workspace]] {:?}", ws.name));
                out.problems
                    .push(format!("{file}: {key}: {}", e.reason_first()));
                continue;
            }
        };
        let mut desired = resolve::resolve(
            &ws.name,
            &info.id,
            mapping,
            &catalog,
            groups.as_deref().unwrap_or(&[]),
            &config.policy,
        );
        if groups.is_none() {
            // The IdP could not be read: its group names are not judged (its problem is
            // listed above); the catalog's are.
            desired.unresolved.retain(|u| u.what != "IdP group");
        }
        crate::reconcile::suppress::suggest_idp_groups(
            &mut desired.unresolved,
            found
                .iter()
                .copied()
                .chain(segment_groups.iter().map(String::as_str)),
        );
        for u in &desired.unresolved {
            out.problems.push(format!(
                "{}:{}: {} {:?} does not resolve in {}: {}",
                crate::paths::shown(&config.base_dir.join(&u.origin.file)),
                u.origin.line,
                u.what,
                u.name,
                ws.name,
                u.reason
            ));
        }
        out.groups += desired.groups.iter().filter(|g| g.idp.is_some()).count();
        out.grants += desired
            .groups
            .iter()
            .filter_map(|g| g.grants.as_ref())
            .map(Vec::len)
            .sum::<usize>();
    }
    Ok(out)
}

/// The finding kinds that can be critical.
const CAN_BE_CRITICAL: [Kind; 6] = [
    Kind::MembershipUnexpected,
    Kind::DeactivatedUserPresent,
    Kind::GroupPermissionsDrift,
    Kind::DirectGrant,
    Kind::UnmappedGroup,
    Kind::ExceptionExpired,
];

/// One line per workspace whose critical findings of some kind would reach no alert sink
/// (`validate` prints them as warnings). Pure.
pub fn unrouted_critical(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for ws in &config.workspaces {
        let kinds: Vec<&str> = CAN_BE_CRITICAL
            .iter()
            .map(|k| k.as_str())
            .filter(|k| config.alerts.route("critical", k, &ws.name).is_empty())
            .collect();
        if !kinds.is_empty() {
            out.push(format!(
                "critical findings in workspace {:?} reach no alert sink ({}); add an [[alerts.route]] that matches them",
                ws.name,
                kinds.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(alerts: &str) -> Config {
        let text = format!(
            "[idp]\nkind = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"t\"\n\n[[workspace]]\nname = \"production\"\ntoken = \"s\"\n\n[[workspace]]\nname = \"staging\"\ntoken = \"s\"\n{alerts}"
        );
        crate::config::load_str(
            &text,
            Path::new("/etc/scimwatch/scimwatch.toml"),
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn validate_warns_when_critical_findings_reach_no_sink() {
        let none = config("");
        assert_eq!(unrouted_critical(&none).len(), 2);
        let sink =
            "[[alerts.sink]]\nname = \"oncall\"\nkind = \"pagerduty\"\nrouting_key = \"k\"\n";
        let all = config(&format!("{sink}[[alerts.route]]\nsinks = [\"oncall\"]\n"));
        assert!(unrouted_critical(&all).is_empty());
        let prod_only = config(&format!(
            "{sink}[[alerts.route]]\nsinks = [\"oncall\"]\nworkspaces = [\"production\"]\nkinds = [\"direct_grant\"]\n"
        ));
        let w = unrouted_critical(&prod_only);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("\"production\"")
                && !w[0].contains("direct_grant")
                && w[0].contains("membership_unexpected"),
            "{w:?}"
        );
        assert!(
            w[1].contains("\"staging\"") && w[1].contains("direct_grant"),
            "{w:?}"
        );
    }
}
