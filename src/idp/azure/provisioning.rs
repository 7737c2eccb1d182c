//! Entra's provisioning service as Graph shows it (reference/graph.md §3 "Provisioning
//! job", §7 `/auditLogs/provisioning`): the job status of one enterprise app (is it in
//! quarantine?) and the latest provisioning-log record about one user (why did a push not
//! arrive?).
//!
//! Contract:
//! - The service principal of an app id is looked up once and kept for the life of the
//!   client (it never changes for an app).
//! - Provisioning-log reads go through the audit `Http`, paced with directory-audit reads
//!   inside Graph's 5 requests / 10 s for `/auditLogs/*`; one request per user, one page.
//! - A failure is an `IdpError`; "no record" is `Ok(None)`, never a guess.

use reqwest::StatusCode;

use super::{api_error, encode, parse_body, wire, Azure, SERVICE};
use crate::error::ErrorClass;
use crate::http::redact_url;
use crate::idp::IdpError;
use crate::model::{Evidence, ProvisioningJob};

/// How many provisioning records one evidence read looks at (the newest first).
const EVIDENCE_PAGE: u32 = 50;

impl Azure {
    /// The provisioning jobs of the enterprise app whose application (client) id is
    /// `app_id`.
    pub async fn provisioning_jobs(&self, app_id: &str) -> Result<Vec<ProvisioningJob>, IdpError> {
        let sp = self.service_principal(app_id).await?;
        let url = format!(
            "{}/servicePrincipals/{}/synchronization/jobs",
            self.inner.base,
            encode(&sp)
        );
        let page: wire::Page<wire::SyncJob> = self
            .get_json(
                &self.inner.http,
                "GET /servicePrincipals/{id}/synchronization/jobs",
                &url,
            )
            .await?;
        Ok(page
            .value
            .into_iter()
            .map(|j| {
                let status = j.status.unwrap_or_default();
                ProvisioningJob {
                    id: j.id,
                    status: status.code.unwrap_or_else(|| "Unknown".to_string()),
                    quarantine_reason: status.quarantine.and_then(|q| q.reason),
                }
            })
            .collect())
    }

    /// The service principal (enterprise app) object id of `app_id`, cached.
    async fn service_principal(&self, app_id: &str) -> Result<String, IdpError> {
        if let Some(id) = self
            .inner
            .service_principals
            .lock()
            .ok()
            .and_then(|m| m.get(app_id).cloned())
        {
            return Ok(id);
        }
        let url = format!(
            "{}/servicePrincipals(appId='{}')?$select=id,appId,displayName",
            self.inner.base,
            encode(&app_id.replace('\'', "''"))
        );
        let answer = self
            .get(&self.inner.http, "GET /servicePrincipals(appId)", &url)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(IdpError::Api {
                service: SERVICE,
                request: format!("GET {}", redact_url(&url)),
                reason: format!(
                    "404: no enterprise app (service principal) has appId {app_id:?}; check the workspace's entra_app_id"
                ),
                class: ErrorClass::Auth,
            });
        }
        if !answer.status.is_success() {
            return Err(api_error("GET", &url, &answer));
        }
        let sp: wire::ServicePrincipal = parse_body(&url, &answer)?;
        if let Ok(mut m) = self.inner.service_principals.lock() {
            m.insert(app_id.to_string(), sp.id.clone());
        }
        Ok(sp.id)
    }

    /// The provisioning log's latest word on the Entra user `user_id` (object id), in the
    /// job `job_id` when given: the newest record that is not a success, else the newest.
    pub async fn provisioning_evidence(
        &self,
        user_id: &str,
        job_id: Option<&str>,
    ) -> Result<Option<Evidence>, IdpError> {
        let mut filter = format!("sourceIdentity/id eq '{}'", user_id.replace('\'', "''"));
        if let Some(job) = job_id {
            filter.push_str(&format!(" and jobId eq '{}'", job.replace('\'', "''")));
        }
        let url = format!(
            "{}/auditLogs/provisioning?$filter={}&$top={EVIDENCE_PAGE}",
            self.inner.base,
            encode(&filter)
        );
        let page: wire::Page<wire::ProvisioningRecord> = self
            .get_json(&self.inner.audit_http, "GET /auditLogs/provisioning", &url)
            .await?;
        let mut records = page.value;
        records.sort_by_key(|r| std::cmp::Reverse(r.activity_date_time));
        let status = |r: &wire::ProvisioningRecord| {
            r.provisioning_status_info
                .as_ref()
                .and_then(|s| s.status.clone())
                .unwrap_or_else(|| "unknown".to_string())
        };
        let pick = records
            .iter()
            .find(|r| !status(r).eq_ignore_ascii_case("success"))
            .or_else(|| records.first());
        Ok(pick.map(|r| {
            let info = r
                .provisioning_status_info
                .as_ref()
                .and_then(|s| s.error_information.as_ref());
            Evidence {
                status: status(r).to_lowercase(),
                error_code: info.and_then(|i| i.error_code.clone()),
                reason: info.and_then(|i| i.reason.clone()),
                time: r.activity_date_time,
            }
        }))
    }
}
