//! What a full pass does only under Entra ID: the provisioning job's quarantine, and the
//! provisioning-log evidence on findings that turned to drift.
//!
//! Contract:
//! - Quarantine: a workspace with `entra_app_id` whose provisioning job is in quarantine
//!   (or whose job status cannot be read) counts as a workspace that could not be read:
//!   it keeps its findings as they were, and the alert planner opens one
//!   `source_unavailable` for it after `alerts.source_down_after` passes, holding back its
//!   drift alerts, instead of paging once per person Entra stopped provisioning.
//! - Evidence: a SCIM-carried finding about a person that is `drift` while an IdP change
//!   explains it (a stalled push: its deadline passed) gets `evidence` from the
//!   provisioning log, read once and then kept from the stored finding. At most
//!   [`EVIDENCE_PER_PASS`] reads per pass (they share Graph's 5 requests / 10 s with the
//!   directory audits); the others are read by the next passes. A failed read is logged
//!   and leaves the finding without evidence: evidence explains, it never decides.

use std::collections::{BTreeMap, HashMap};

use super::Reconciler;
use crate::idp::Idp;
use crate::model::{Email, GroupRead, IdpSnapshot, UserLookup};
use crate::reconcile::{Finding, Kind, State};

/// Provisioning-log reads per pass at most.
pub const EVIDENCE_PER_PASS: usize = 4;

/// One workspace's provisioning job as a pass saw it.
pub(super) struct JobCheck {
    /// The job id, to scope provisioning-log reads.
    pub job: Option<String>,
    /// Why the workspace counts as unreadable (quarantine, or the status read failed).
    pub unavailable: Option<String>,
}

impl Reconciler {
    /// The provisioning job of every workspace that names its `entra_app_id` (Entra only).
    pub(super) async fn provisioning_jobs(&self) -> BTreeMap<String, JobCheck> {
        let mut out = BTreeMap::new();
        let Idp::Azure(azure) = &self.idp else {
            return out;
        };
        for (ws, _) in &self.clients {
            let Some(app) = &ws.entra_app_id else {
                continue;
            };
            let check = match azure.provisioning_jobs(app).await {
                Ok(jobs) => {
                    let quarantined = jobs.iter().find(|j| j.quarantined());
                    JobCheck {
                        job: jobs.first().map(|j| j.id.clone()),
                        unavailable: quarantined.map(|j| {
                            format!(
                                "graph: the Entra provisioning job {} of app {app} is in quarantine ({}): Entra pushes nothing into this workspace until it leaves quarantine",
                                j.id,
                                j.quarantine_reason.as_deref().unwrap_or("no reason given")
                            )
                        }),
                    }
                }
                Err(e) => JobCheck {
                    job: None,
                    unavailable: Some(format!(
                        "reading the Entra provisioning job status: {}",
                        crate::error::chain(&e)
                    )),
                },
            };
            if let Some(why) = &check.unavailable {
                tracing::warn!(workspace = %ws.name, reason = %why, "Entra provisioning is unavailable for this workspace; its findings stay as they were.");
            }
            out.insert(ws.name.clone(), check);
        }
        out
    }

    /// Adds provisioning-log evidence to the stalled SCIM-carried findings (Entra only).
    pub(super) async fn attach_evidence(
        &self,
        findings: &mut [Finding],
        idp: &IdpSnapshot,
        jobs: &BTreeMap<String, JobCheck>,
    ) -> anyhow::Result<()> {
        let Idp::Azure(azure) = &self.idp else {
            return Ok(());
        };
        let wanted = |f: &Finding| {
            f.state == State::Drift
                && f.deadline.is_some()
                && f.user.is_some()
                && matches!(
                    f.kind,
                    Kind::UserNotProvisioned
                        | Kind::MembershipMissing
                        | Kind::MembershipUnexpected
                        | Kind::DeactivatedUserPresent
                )
        };
        if !findings.iter().any(wanted) {
            return Ok(());
        }
        let kept: HashMap<String, crate::model::Evidence> = self
            .store
            .findings_open()
            .await?
            .into_iter()
            .filter_map(|s| s.finding.evidence.map(|e| (s.finding.id, e)))
            .collect();
        let ids = entra_ids(idp);
        let mut reads = 0usize;
        for f in findings.iter_mut().filter(|f| wanted(f)) {
            if let Some(e) = kept.get(&f.id) {
                f.evidence = Some(e.clone());
                continue;
            }
            if reads >= EVIDENCE_PER_PASS {
                continue;
            }
            let Some(user_id) = f.user.as_ref().and_then(|u| ids.get(u)) else {
                continue;
            };
            reads += 1;
            let job = jobs.get(&f.workspace).and_then(|j| j.job.as_deref());
            match azure.provisioning_evidence(user_id, job).await {
                Ok(found) => f.evidence = found,
                Err(e) => {
                    tracing::warn!(id = %f.id, error = %crate::error::chain(&e), "Cannot read Entra's provisioning log for this finding; the next pass tries again.");
                }
            }
        }
        Ok(())
    }
}

/// Entra object ids of the people the pass read, by the key Segment knows them by.
fn entra_ids(idp: &IdpSnapshot) -> HashMap<Email, String> {
    let mut out = HashMap::new();
    for (_, g) in &idp.groups {
        if let GroupRead::Found(g) = g {
            for m in &g.members {
                out.insert(m.key.clone(), m.id.clone());
            }
        }
    }
    for (k, l) in &idp.lookups {
        if let UserLookup::Found(u) = l {
            out.insert(k.clone(), u.id.clone());
        }
    }
    out
}
