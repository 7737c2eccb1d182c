//! The Graph side beyond reads (graph.md §3, §4, §6, §7, §9): `groups/delta`, the Segment
//! enterprise apps with their provisioning jobs (quarantine), provisioning logs written by
//! the cycle engine, and change-notification subscriptions with their delivery.
//!
//! Contract:
//! - Delta: `GET /groups/delta` with `$filter=id eq '…' or …` (at most 50 ids, else 400
//!   `Request_UnsupportedQuery`) and `$select` (members are tracked only when `members`
//!   is selected). The first round lists every filtered group with all its direct members
//!   in `members@delta` (a group with more than [`MEMBERS_PER_ITEM`] members repeats on
//!   several items, [`ITEMS_PER_PAGE`] items a page); pages chain by `$skiptoken`, the
//!   last one carries `@odata.deltaLink` with an opaque `$deltatoken` that freezes the
//!   query. A token round lists, per changed group, the members added and those removed
//!   (`"@removed": {"reason": "deleted"}`) since the token. `$deltatoken=latest` answers
//!   a deltaLink and no data. A token older than `delta_token_lifetime` (default 7 days),
//!   or issued before `POST /_sim/azure/delta/reset`, is 410 Gone with a `Location` to a
//!   fresh initial query and the `syncStateNotFound` code. Tokens are HMAC-signed.
//! - Apps: every workspace an `[[azure.group]]` is pushed to has an enterprise app
//!   (`GET /servicePrincipals(appId='…')`) with one provisioning job
//!   (`/servicePrincipals/{id}/synchronization/jobs`), `Active` or `Quarantine`.
//! - Provisioning logs: each change a cycle pushes is one `provisioningObjectSummary`
//!   (`success`); in `failing` mode each dropped change is a `failure` with Segment's 409;
//!   a quarantined workspace's changes stay queued and log nothing.
//! - Subscriptions: `POST /subscriptions` validates the notification URL(s) first
//!   (`?validationToken=…`, 200 `text/plain` echo within 10 s, else 400), refuses an
//!   `expirationDateTime` beyond 41,760 minutes and clamps it to
//!   `subscription_max_lifetime`; `PATCH`, `DELETE` and `/reauthorize`. Microsoft says
//!   not to reauthorize and update (PATCH) one subscription within 10 minutes of each
//!   other (it can leave the subscription inconsistent): the second of such a pair is
//!   refused with 409 `ReauthorizeAndUpdateConflict` (our choice of answer; Graph's
//!   own is undocumented) and counted in the state's `subscription_conflicts`. A group change
//!   sends `updated` to every live subscription on `/groups`, `/groups/{id}` or
//!   `/groups/{id}/members`, batched per URL, echoing `clientState`; expired
//!   subscriptions get nothing. 3 s timeout, one retry on 5xx or no answer.
//!
//! Never log a client state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::cursor::random_id;
use super::graph::{error, quoted};
use super::graph_state::{guid_from, Directory};
use super::http::{empty, json as json_resp, set};
use super::push::{Change, Op};
use super::seed::AzureSeed;
use super::{App, Req};

pub const MEMBERS_PER_ITEM: usize = 100;
pub const ITEMS_PER_PAGE: usize = 10;
const MAX_DELTA_IDS: usize = 50;
const DEFAULT_DELTA_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_SUBSCRIPTION_MINUTES: i64 = 41_760;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// One membership change of a group, in order.
pub struct DeltaEntry {
    pub group: String,
    /// (member id, "user" | "group", added)
    pub member: Option<(String, &'static str, bool)>,
}

/// The Segment enterprise app of one workspace.
pub struct SimApp {
    pub app_id: String,
    pub sp_id: String,
    pub job_id: String,
    /// The quarantine reason while in quarantine.
    pub quarantine: Option<(String, DateTime<Utc>)>,
}

pub struct Sub {
    pub id: String,
    pub resource: String,
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    pub expires: DateTime<Utc>,
    /// The last `PATCH` and `/reauthorize` accepted (the 10-minute rule).
    pub patched: Option<DateTime<Utc>>,
    pub reauthorized: Option<DateTime<Utc>>,
}

/// Microsoft: no reauthorize and update of one subscription within this long.
const REAUTHORIZE_UPDATE_GAP: chrono::Duration = chrono::Duration::minutes(10);

/// The refusal of the second of a reauthorize/update pair within 10 minutes.
fn pair_conflict(id: &str, this: &str, other: &str) -> Response {
    error(
        409,
        "ReauthorizeAndUpdateConflict",
        &format!("Subscription '{id}': a {this} within 10 minutes of a {other} can leave the subscription inconsistent; send one or the other."),
    )
}

/// A notification item waiting for delivery to `url`.
pub struct Note {
    pub url: String,
    pub item: Value,
}

pub struct Sync {
    pub delta_log: Vec<DeltaEntry>,
    pub delta_epoch: u64,
    pub delta_token_lifetime: Duration,
    pub apps: BTreeMap<String, SimApp>,
    /// Provisioning records, oldest first.
    pub provisioning: Vec<Value>,
    pub subscriptions: BTreeMap<String, Sub>,
    pub subscription_max_lifetime: Option<Duration>,
    /// Reauthorize/PATCH pairs within 10 minutes that were refused.
    pub subscription_conflicts: u64,
    pub outbox: Vec<Note>,
    /// What was delivered: `{url, items, status}` (client states left out).
    pub deliveries: Vec<Value>,
    cycle: u64,
}

impl Sync {
    pub fn new(az: &AzureSeed) -> Sync {
        let mut apps = BTreeMap::new();
        for ws in az.group.iter().flat_map(|g| g.pushed_to.iter()) {
            apps.entry(ws.clone()).or_insert_with(|| SimApp {
                app_id: guid_from(&format!("azure-app:{ws}")),
                sp_id: guid_from(&format!("azure-sp:{ws}")),
                job_id: format!(
                    "segment.{}.{}",
                    &guid_from(&format!("azure-job:{ws}"))[..8],
                    guid_from(&format!("azure-job-t:{}", az.tenant_id))
                ),
                quarantine: None,
            });
        }
        Sync {
            delta_log: Vec::new(),
            delta_epoch: 0,
            delta_token_lifetime: az.delta_token_lifetime.unwrap_or(DEFAULT_DELTA_LIFETIME),
            apps,
            provisioning: Vec::new(),
            subscriptions: BTreeMap::new(),
            subscription_max_lifetime: az.subscription_max_lifetime,
            subscription_conflicts: 0,
            outbox: Vec::new(),
            deliveries: Vec::new(),
            cycle: 0,
        }
    }

    /// Records a change of group `gid` for delta and for subscribers.
    pub fn group_changed(
        &mut self,
        gid: &str,
        member: Option<(&str, &'static str, bool)>,
        tenant: &str,
    ) {
        self.delta_log.push(DeltaEntry {
            group: gid.to_string(),
            member: member.map(|(id, k, a)| (id.to_string(), k, a)),
        });
        let now = Utc::now();
        let resources = [
            "/groups".to_string(),
            format!("/groups/{gid}"),
            format!("/groups/{gid}/members"),
        ];
        for s in self.subscriptions.values() {
            let matches = resources
                .iter()
                .any(|r| r.eq_ignore_ascii_case(s.resource.trim_end_matches('/')));
            if !matches || s.expires <= now || !s.change_type.contains("updated") {
                continue;
            }
            let mut data = json!({"@odata.type": "#Microsoft.Graph.Group", "@odata.id": format!("Groups/{gid}"), "id": gid});
            if let Some((id, _, added)) = member {
                let mut m = json!({"id": id});
                if !added {
                    m["@removed"] = json!({"reason": "deleted"});
                }
                data["members@delta"] = json!([m]);
            }
            self.outbox.push(Note {
                url: s.notification_url.clone(),
                item: json!({
                    "subscriptionId": s.id,
                    "subscriptionExpirationDateTime": s.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "clientState": s.client_state,
                    "changeType": "updated",
                    "resource": format!("Groups/{gid}"),
                    "tenantId": tenant,
                    "resourceData": data,
                }),
            });
        }
    }

    /// Sends a lifecycle event of subscription `id` (`subscriptionRemoved` also drops it).
    pub fn lifecycle(&mut self, id: &str, event: &str, tenant: &str) -> Result<(), &'static str> {
        if !["reauthorizationRequired", "subscriptionRemoved", "missed"].contains(&event) {
            return Err("event must be reauthorizationRequired, subscriptionRemoved or missed");
        }
        let s = self.subscriptions.get(id).ok_or("unknown subscription")?;
        self.outbox.push(Note {
            url: s.lifecycle_url.clone().unwrap_or_else(|| s.notification_url.clone()),
            item: json!({
                "subscriptionId": s.id,
                "subscriptionExpirationDateTime": s.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "tenantId": tenant,
                "clientState": s.client_state,
                "lifecycleEvent": event,
            }),
        });
        if event == "subscriptionRemoved" {
            self.subscriptions.remove(id);
        }
        Ok(())
    }

    /// Whether the workspace's provisioning job is in quarantine.
    pub fn quarantined(&self, workspace: &str) -> bool {
        self.apps
            .get(workspace)
            .is_some_and(|a| a.quarantine.is_some())
    }

    /// Starts a cycle: its id.
    pub fn next_cycle(&mut self) -> String {
        self.cycle += 1;
        guid_from(&format!("cycle:{}", self.cycle))
    }

    /// One provisioning record for a change a cycle pushed (or failed to).
    pub fn log_push(
        &mut self,
        cycle: &str,
        change: &Change,
        user: (&str, &str),
        failure: Option<(&str, &str)>,
    ) {
        let Some(app) = self.apps.get(&change.workspace) else {
            return;
        };
        let now = Utc::now();
        let (action, detail) = match &change.op {
            Op::Add { group, .. } => ("update", format!("Add member to group {group}")),
            Op::Remove { group, .. } => ("update", format!("Remove member from group {group}")),
            Op::Deprovision { .. } => ("disable", "Set active=false".to_string()),
        };
        let n = self.provisioning.len();
        let (status, info) = match failure {
            None => ("success", Value::Null),
            Some((code, reason)) => (
                "failure",
                json!({"errorCode": code, "reason": reason, "errorCategory": "NonServiceFailure",
                       "recommendedAction": "Check the user in the target application, then retry or use Provision on demand."}),
            ),
        };
        self.provisioning.push(json!({
            "id": guid_from(&format!("prov:{n}:{}", now.timestamp_nanos_opt().unwrap_or(0))),
            "activityDateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "changeId": guid_from(&format!("change:{n}")),
            "cycleId": cycle,
            "durationInMilliseconds": 120,
            "jobId": app.job_id,
            "provisioningAction": action,
            "provisioningStatusInfo": {"status": status, "errorInformation": info},
            "provisioningSteps": [
                {"name": "EntryImport", "provisioningStepType": "import", "status": "success", "description": format!("Retrieved {} from Entra ID", user.1), "details": {}},
                {"name": "EntryExportUpdate", "provisioningStepType": "export", "status": status, "description": detail, "details": {}},
            ],
            "servicePrincipal": {"id": app.sp_id, "displayName": format!("Segment ({})", change.workspace)},
            "sourceIdentity": {"id": user.0, "displayName": user.1, "identityType": "User", "details": {}},
            "targetIdentity": {"id": "", "displayName": user.1, "identityType": "urn:ietf:params:scim:schemas:core:2.0:User", "details": {}},
            "sourceSystem": {"id": "", "displayName": "Entra ID", "details": {}},
            "targetSystem": {"id": "", "displayName": "Segment", "details": {}},
            "initiatedBy": {"id": "", "displayName": "Azure AD Provisioning Service", "initiatorType": "system"},
            "modifiedProperties": [],
        }));
    }

    /// `/_sim/state`'s additions to `azure`.
    pub fn dump_into(&self, out: &mut Value) {
        let apps: Map<String, Value> = self
            .apps
            .iter()
            .map(|(ws, a)| {
                (
                    ws.clone(),
                    json!({"app_id": a.app_id, "service_principal_id": a.sp_id, "job_id": a.job_id,
                    "status": if a.quarantine.is_some() { "Quarantine" } else { "Active" },
                    "quarantine_reason": a.quarantine.as_ref().map(|q| q.0.clone())}),
                )
            })
            .collect();
        let subs: Vec<Value> = self
            .subscriptions
            .values()
            .map(|s| {
                json!({"id": s.id, "resource": s.resource, "changeType": s.change_type,
                "notificationUrl": s.notification_url, "lifecycleNotificationUrl": s.lifecycle_url,
                "expirationDateTime": s.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
            })
            .collect();
        out["apps"] = Value::Object(apps);
        out["provisioning_logs"] = json!(self.provisioning);
        out["subscriptions"] = json!(subs);
        out["subscription_conflicts"] = json!(self.subscription_conflicts);
        out["notification_deliveries"] = json!(self.deliveries);
        out["delta_changes"] = json!(self.delta_log.len());
    }
}

// ---- delta -----------------------------------------------------------------------------

/// What a delta token or skiptoken freezes.
struct Frozen {
    epoch: u64,
    /// The log position the round starts from (None: an initial round).
    from: Option<usize>,
    /// The log position the round ends at.
    to: usize,
    offset: usize,
    issued: i64,
    members: bool,
    ids: Option<Vec<String>>,
}

impl Frozen {
    fn encode(&self, kind: char) -> String {
        format!(
            "{kind}|{}|{}|{}|{}|{}|{}|{}",
            self.epoch,
            self.from.map(|f| f.to_string()).unwrap_or_default(),
            self.to,
            self.offset,
            self.issued,
            u8::from(self.members),
            self.ids
                .as_ref()
                .map(|i| i.join(","))
                .unwrap_or_else(|| "*".into())
        )
    }

    fn decode(kind: char, s: &str) -> Option<Frozen> {
        let mut p = s.split('|');
        if p.next()? != kind.to_string() {
            return None;
        }
        let epoch = p.next()?.parse().ok()?;
        let from = match p.next()? {
            "" => None,
            f => Some(f.parse().ok()?),
        };
        let to = p.next()?.parse().ok()?;
        let offset = p.next()?.parse().ok()?;
        let issued = p.next()?.parse().ok()?;
        let members = p.next()? == "1";
        let ids = match p.next()? {
            "*" => None,
            "" => Some(vec![]),
            l => Some(l.split(',').map(str::to_string).collect()),
        };
        Some(Frozen {
            epoch,
            from,
            to,
            offset,
            issued,
            members,
            ids,
        })
    }
}

fn parse_id_filter(f: &str) -> Option<Vec<String>> {
    f.split(" or ")
        .map(|c| {
            let c = c
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .trim();
            c.strip_prefix("id eq ").and_then(quoted)
        })
        .collect()
}

fn member_ref(d: &Directory, id: &str, kind: &str, added: bool) -> Value {
    let mut v = json!({"@odata.type": format!("#microsoft.graph.{kind}"), "id": id});
    if !added {
        v["@removed"] = json!({"reason": if kind == "user" && !d.users.contains_key(id) { "deleted" } else { "changed" }});
    }
    v
}

/// `GET /groups/delta`.
pub fn delta(app: &App, req: &Req, d: &Directory, origin: &str) -> Response {
    let now = Utc::now();
    let sync = &d.sync;
    let initial_url = |ids: &Option<Vec<String>>, members: bool| {
        let mut q = Vec::new();
        if let Some(ids) = ids {
            let f = ids
                .iter()
                .map(|i| format!("id eq '{i}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            q.push(format!("$filter={}", enc(&f)));
        }
        q.push(format!(
            "$select={}",
            if members {
                "id,displayName,members"
            } else {
                "id,displayName"
            }
        ));
        format!("{origin}/groups/delta?{}", q.join("&"))
    };
    let frozen = if let Some(t) = req.q("$deltatoken") {
        if t == "latest" {
            let (ids, members) = match initial_query(req) {
                Ok(x) => x,
                Err(r) => return r,
            };
            let f = Frozen {
                epoch: sync.delta_epoch,
                from: None,
                to: sync.delta_log.len(),
                offset: 0,
                issued: now.timestamp_millis(),
                members,
                ids,
            };
            return delta_page(app, origin, Map::new(), Vec::new(), Some(f), None);
        }
        let Some(mut f) = app
            .signer
            .okta_verify(t)
            .and_then(|p| Frozen::decode('D', &p))
        else {
            return error(400, "Request_BadRequest", "Invalid delta token.");
        };
        let expired =
            now.timestamp_millis() - f.issued >= sync.delta_token_lifetime.as_millis() as i64;
        if f.epoch != sync.delta_epoch || expired {
            let mut resp = error(
                410,
                "syncStateNotFound",
                "The delta token has expired; resync from a new initial query.",
            );
            set(&mut resp, "location", &initial_url(&f.ids, f.members));
            return resp;
        }
        // The round: from the token's position to now.
        f.from = Some(f.to);
        f.to = sync.delta_log.len();
        f.offset = 0;
        f
    } else if let Some(t) = req.q("$skiptoken") {
        let Some(f) = app
            .signer
            .okta_verify(t)
            .and_then(|p| Frozen::decode('S', &p))
        else {
            return error(400, "Request_BadRequest", "Invalid skip token.");
        };
        if f.epoch != sync.delta_epoch {
            let mut resp = error(
                410,
                "syncStateNotFound",
                "The delta token has expired; resync from a new initial query.",
            );
            set(&mut resp, "location", &initial_url(&f.ids, f.members));
            return resp;
        }
        f
    } else {
        let (ids, members) = match initial_query(req) {
            Ok(x) => x,
            Err(r) => return r,
        };
        Frozen {
            epoch: sync.delta_epoch,
            from: None,
            to: sync.delta_log.len(),
            offset: 0,
            issued: now.timestamp_millis(),
            members,
            ids,
        }
    };
    let wanted = |gid: &str| {
        frozen
            .ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|i| i == gid))
    };
    // Every item of the round, then the page at `offset`.
    let mut items: Vec<Value> = Vec::new();
    match frozen.from {
        None => {
            for g in d.groups.values().filter(|g| wanted(&g.id)) {
                let members: Vec<Value> = g
                    .members
                    .iter()
                    .map(|u| member_ref(d, u, "user", true))
                    .chain(
                        g.member_groups
                            .iter()
                            .map(|c| member_ref(d, c, "group", true)),
                    )
                    .collect();
                let base = json!({"id": g.id, "displayName": g.name});
                if !frozen.members || members.is_empty() {
                    let mut v = base.clone();
                    if frozen.members {
                        v["members@delta"] = json!([]);
                    }
                    items.push(v);
                    continue;
                }
                for chunk in members.chunks(MEMBERS_PER_ITEM) {
                    let mut v = base.clone();
                    v["members@delta"] = json!(chunk);
                    items.push(v);
                }
            }
        }
        Some(from) => {
            // Per group, each member's last change in the window (idempotent to apply).
            let mut changed: BTreeMap<String, BTreeMap<String, (&'static str, bool)>> =
                BTreeMap::new();
            for e in sync.delta_log.iter().take(frozen.to).skip(from) {
                if !wanted(&e.group) {
                    continue;
                }
                let slot = changed.entry(e.group.clone()).or_default();
                if let Some((id, kind, added)) = &e.member {
                    slot.insert(id.clone(), (kind, *added));
                }
            }
            for (gid, members) in changed {
                let name = d.groups.get(&gid).map(|g| g.name.clone());
                let mut v = json!({"id": gid, "displayName": name});
                if frozen.members {
                    let list: Vec<Value> = members
                        .iter()
                        .map(|(id, (k, a))| member_ref(d, id, k, *a))
                        .collect();
                    v["members@delta"] = json!(list);
                }
                items.push(v);
            }
        }
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(frozen.offset)
        .take(ITEMS_PER_PAGE)
        .collect();
    let next_offset = frozen.offset + ITEMS_PER_PAGE;
    if next_offset < total {
        let next = Frozen {
            offset: next_offset,
            ..frozen
        };
        return delta_page(app, origin, Map::new(), page, None, Some(next));
    }
    let last = Frozen {
        from: None,
        offset: 0,
        issued: now.timestamp_millis(),
        ..frozen
    };
    delta_page(app, origin, Map::new(), page, Some(last), None)
}

fn initial_query(req: &Req) -> Result<(Option<Vec<String>>, bool), Response> {
    if req.q("$top").is_some() || req.q("$expand").is_some() || req.q("$orderby").is_some() {
        return Err(error(
            400,
            "Request_UnsupportedQuery",
            "Delta queries support neither $top, $expand nor $orderby.",
        ));
    }
    let ids = match req.q("$filter") {
        None => None,
        Some(f) => match parse_id_filter(f) {
            Some(ids) if ids.len() <= MAX_DELTA_IDS => Some(ids),
            Some(_) => {
                return Err(error(
                    400,
                    "Request_UnsupportedQuery",
                    "A delta $filter may name at most 50 ids.",
                ))
            }
            None => {
                return Err(error(
                    400,
                    "Request_UnsupportedQuery",
                    "Delta queries only filter by id eq '…' joined with or.",
                ))
            }
        },
    };
    let members = req
        .q("$select")
        .is_some_and(|s| s.split(',').any(|f| f.trim() == "members"));
    Ok((ids, members))
}

fn delta_page(
    app: &App,
    origin: &str,
    mut body: Map<String, Value>,
    items: Vec<Value>,
    done: Option<Frozen>,
    next: Option<Frozen>,
) -> Response {
    body.insert(
        "@odata.context".into(),
        json!(format!("{origin}/$metadata#groups")),
    );
    if let Some(n) = next {
        let t = app.signer.okta(&n.encode('S'));
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{origin}/groups/delta?$skiptoken={t}")),
        );
    }
    if let Some(d) = done {
        let t = app.signer.okta(&d.encode('D'));
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{origin}/groups/delta?$deltatoken={t}")),
        );
    }
    body.insert("value".into(), Value::Array(items));
    json_resp(StatusCode::OK, &Value::Object(body), ODATA_JSON)
}

// ---- apps, jobs, provisioning logs --------------------------------------------------------

/// `servicePrincipals(appId='…')` as a path segment → the app id.
pub fn app_id_of(segment: &str) -> Option<String> {
    let inner = segment
        .strip_prefix("servicePrincipals(appId=")?
        .strip_suffix(')')?;
    quoted(inner)
}

pub fn service_principal(d: &Directory, app_id: &str, origin: &str) -> Response {
    match d.sync.apps.iter().find(|(_, a)| a.app_id == app_id) {
        Some((ws, a)) => json_resp(
            StatusCode::OK,
            &json!({"@odata.context": format!("{origin}/$metadata#servicePrincipals/$entity"),
                    "id": a.sp_id, "appId": a.app_id, "displayName": format!("Segment ({ws})"),
                    "servicePrincipalType": "Application", "accountEnabled": true, "tags": ["WindowsAzureActiveDirectoryCustomSingleSignOnApplication"]}),
            ODATA_JSON,
        ),
        None => error(404, "Request_ResourceNotFound", &format!("Resource 'servicePrincipals(appId='{app_id}')' does not exist or one of its queried reference-property objects are not present.")),
    }
}

pub fn jobs(d: &Directory, sp_id: &str, origin: &str) -> Response {
    let Some((_, a)) = d.sync.apps.iter().find(|(_, a)| a.sp_id == sp_id) else {
        return error(404, "Request_ResourceNotFound", &format!("Resource '{sp_id}' does not exist or one of its queried reference-property objects are not present."));
    };
    let quarantine = a.quarantine.as_ref().map(|(reason, since)| {
        let t = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        json!({"currentBegan": t, "nextAttempt": (*since + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
               "reason": reason, "seriesBegan": t, "seriesCount": 1, "error": null})
    });
    let job = json!({
        "id": a.job_id, "templateId": "segment",
        "schedule": {"expiration": null, "interval": "PT40M", "state": "Active"},
        "status": {"code": if quarantine.is_some() { "Quarantine" } else { "Active" },
                   "countSuccessiveCompleteFailures": 0, "escrowsPruned": false,
                   "lastExecution": null, "lastSuccessfulExecution": null, "lastSuccessfulExecutionWithExports": null,
                   "quarantine": quarantine, "steadyStateFirstAchievedTime": null, "steadyStateLastAchievedTime": null,
                   "troubleshootingUrl": null},
        "synchronizationJobSettings": [],
    });
    json_resp(
        StatusCode::OK,
        &json!({"@odata.context": format!("{origin}/$metadata#servicePrincipals('{sp_id}')/synchronization/jobs"), "value": [job]}),
        ODATA_JSON,
    )
}

/// Provisioning records, newest first, filtered by `field eq 'v'` clauses joined by `and`
/// over `sourceIdentity/id`, `jobId`, `cycleId`, `provisioningAction` and
/// `provisioningStatusInfo/status`.
pub fn provisioning_logs(d: &Directory, filter: Option<&str>) -> Result<Vec<Value>, Response> {
    let mut conds: Vec<(Vec<&str>, String)> = Vec::new();
    if let Some(f) = filter {
        for clause in f.split(" and ") {
            let clause = clause.trim().trim_start_matches('(').trim_end_matches(')');
            let Some((field, value)) = clause.split_once(" eq ") else {
                return Err(error(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified.",
                ));
            };
            let path: Vec<&str> = match field.trim() {
                "sourceIdentity/id" => vec!["sourceIdentity", "id"],
                "jobId" => vec!["jobId"],
                "cycleId" => vec!["cycleId"],
                "provisioningAction" => vec!["provisioningAction"],
                "provisioningStatusInfo/status" => vec!["provisioningStatusInfo", "status"],
                _ => {
                    return Err(error(
                        400,
                        "Request_UnsupportedQuery",
                        "Unsupported or invalid query filter clause specified.",
                    ))
                }
            };
            let Some(v) = quoted(value) else {
                return Err(error(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified.",
                ));
            };
            conds.push((path, v));
        }
    }
    Ok(d.sync
        .provisioning
        .iter()
        .rev()
        .filter(|r| {
            conds.iter().all(|(path, v)| {
                let mut x = *r;
                for p in path {
                    match x.get(*p) {
                        Some(n) => x = n,
                        None => return false,
                    }
                }
                x.as_str() == Some(v.as_str())
            })
        })
        .cloned()
        .collect())
}

// ---- subscriptions ----------------------------------------------------------------------

/// `/subscriptions[...]`, any method. Validation requests are sent without the state lock.
pub async fn subscriptions(app: &App, req: &Req, path: &[&str]) -> Response {
    {
        let st = app.state();
        let Some(d) = st.azure.as_ref() else {
            return error(404, "Request_ResourceNotFound", "No tenant.");
        };
        let auth = req.header("authorization").unwrap_or("").trim();
        let ok = auth
            .strip_prefix("Bearer ")
            .and_then(|t| d.tokens.get(t.trim()))
            .is_some_and(|i| i.expires > Utc::now());
        if !ok {
            return error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure.",
            );
        }
    }
    let origin = format!("{}/graph/v1.0", req.origin);
    let now = Utc::now();
    let body = req.json_body().unwrap_or(Value::Null);
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    match (req.method.clone(), path) {
        (Method::POST, ["subscriptions"]) => {
            let (Some(url), Some(resource), Some(change), Some(exp)) = (
                s("notificationUrl"),
                s("resource"),
                s("changeType"),
                s("expirationDateTime"),
            ) else {
                return error(
                    400,
                    "InvalidRequest",
                    "notificationUrl, resource, changeType and expirationDateTime are required.",
                );
            };
            let Some(exp) = super::cursor::parse_time(&exp) else {
                return error(400, "InvalidRequest", "expirationDateTime is not a date.");
            };
            if exp > now + chrono::Duration::minutes(MAX_SUBSCRIPTION_MINUTES) {
                return error(400, "InvalidRequest", &format!("Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."));
            }
            if exp <= now {
                return error(
                    400,
                    "InvalidRequest",
                    "Subscription expiration must be in the future.",
                );
            }
            if s("clientState").is_some_and(|c| c.len() > 128) {
                return error(
                    400,
                    "InvalidRequest",
                    "clientState may be at most 128 characters.",
                );
            }
            let lifecycle = s("lifecycleNotificationUrl");
            let mut urls = vec![url.clone()];
            if let Some(l) = &lifecycle {
                if *l != url {
                    urls.push(l.clone());
                }
            }
            for u in &urls {
                if let Err(why) = validate(u).await {
                    return error(400, "InvalidRequest", &format!("Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. ({why})"));
                }
            }
            let mut st = app.state();
            let Some(d) = st.azure.as_mut() else {
                return error(404, "Request_ResourceNotFound", "No tenant.");
            };
            let exp = match d.sync.subscription_max_lifetime {
                Some(max) => {
                    exp.min(now + chrono::Duration::from_std(max).unwrap_or(chrono::Duration::MAX))
                }
                None => exp,
            };
            let id = guid_from(&format!("subscription:{}", random_id(16)));
            d.sync.subscriptions.insert(
                id.clone(),
                Sub {
                    id: id.clone(),
                    resource: resource.clone(),
                    change_type: change.clone(),
                    notification_url: url.clone(),
                    lifecycle_url: lifecycle.clone(),
                    client_state: s("clientState"),
                    expires: exp,
                    patched: None,
                    reauthorized: None,
                },
            );
            json_resp(
                StatusCode::CREATED,
                &sub_json(&origin, d.sync.subscriptions.get(&id)),
                ODATA_JSON,
            )
        }
        (Method::PATCH, ["subscriptions", id]) => {
            let Some(exp) = s("expirationDateTime").and_then(|e| super::cursor::parse_time(&e))
            else {
                return error(400, "InvalidRequest", "expirationDateTime is required.");
            };
            if exp > now + chrono::Duration::minutes(MAX_SUBSCRIPTION_MINUTES) {
                return error(400, "InvalidRequest", &format!("Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."));
            }
            let mut st = app.state();
            let Some(d) = st.azure.as_mut() else {
                return error(404, "Request_ResourceNotFound", "No tenant.");
            };
            let max = d.sync.subscription_max_lifetime;
            match d.sync.subscriptions.get_mut(*id) {
                Some(sub)
                    if sub.expires > now
                        && sub
                            .reauthorized
                            .is_some_and(|t| now - t < REAUTHORIZE_UPDATE_GAP) =>
                {
                    d.sync.subscription_conflicts += 1;
                    pair_conflict(id, "PATCH", "reauthorize")
                }
                Some(sub) if sub.expires > now => {
                    sub.patched = Some(now);
                    sub.expires = match max {
                        Some(m) => exp.min(
                            now + chrono::Duration::from_std(m).unwrap_or(chrono::Duration::MAX),
                        ),
                        None => exp,
                    };
                    json_resp(StatusCode::OK, &sub_json(&origin, Some(sub)), ODATA_JSON)
                }
                _ => error(
                    404,
                    "ResourceNotFound",
                    &format!("The object was not found. Subscription '{id}'."),
                ),
            }
        }
        (Method::DELETE, ["subscriptions", id]) => {
            let mut st = app.state();
            let removed = st
                .azure
                .as_mut()
                .and_then(|d| d.sync.subscriptions.remove(*id))
                .is_some();
            if removed {
                empty(StatusCode::NO_CONTENT)
            } else {
                error(404, "ResourceNotFound", "The object was not found.")
            }
        }
        (Method::POST, ["subscriptions", id, "reauthorize"]) => {
            let mut st = app.state();
            let Some(d) = st.azure.as_mut() else {
                return error(404, "ResourceNotFound", "The object was not found.");
            };
            match d.sync.subscriptions.get_mut(*id) {
                Some(sub)
                    if sub.expires > now
                        && sub
                            .patched
                            .is_some_and(|t| now - t < REAUTHORIZE_UPDATE_GAP) =>
                {
                    d.sync.subscription_conflicts += 1;
                    pair_conflict(id, "reauthorize", "PATCH")
                }
                Some(sub) if sub.expires > now => {
                    sub.reauthorized = Some(now);
                    empty(StatusCode::NO_CONTENT)
                }
                _ => error(404, "ResourceNotFound", "The object was not found."),
            }
        }
        (Method::GET, ["subscriptions"]) => {
            let st = app.state();
            let list: Vec<Value> = st
                .azure
                .as_ref()
                .map(|d| {
                    d.sync
                        .subscriptions
                        .values()
                        .map(|x| sub_json(&origin, Some(x)))
                        .collect()
                })
                .unwrap_or_default();
            json_resp(
                StatusCode::OK,
                &json!({"@odata.context": format!("{origin}/$metadata#subscriptions"), "value": list}),
                ODATA_JSON,
            )
        }
        _ => error(405, "Request_BadRequest", "Unsupported subscription call."),
    }
}

fn sub_json(origin: &str, s: Option<&Sub>) -> Value {
    let Some(s) = s else { return Value::Null };
    json!({"@odata.context": format!("{origin}/$metadata#subscriptions/$entity"), "id": s.id, "resource": s.resource,
           "applicationId": "", "changeType": s.change_type, "clientState": s.client_state,
           "notificationUrl": s.notification_url, "lifecycleNotificationUrl": s.lifecycle_url,
           "expirationDateTime": s.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
           "creatorId": "", "latestSupportedTlsVersion": "v1_2", "notificationContentType": null})
}

/// Graph's validation request: the endpoint must echo the token as text/plain within 10 s.
async fn validate(url: &str) -> Result<(), String> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        guid_from(&random_id(8))
    );
    let client = reqwest::Client::builder()
        .timeout(VALIDATION_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .query(&[("validationToken", token.as_str())])
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("answered {}", resp.status().as_u16()));
    }
    let text_plain = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if !text_plain {
        return Err("the answer is not text/plain".into());
    }
    if body != token {
        return Err("the answer does not echo the token".into());
    }
    Ok(())
}

/// Delivers the waiting notifications, batched per URL (called by the engine's loop).
pub fn deliver_due(app: &Arc<App>) {
    let batches: Vec<(String, Vec<Value>)> = {
        let mut st = app.state();
        let Some(d) = st.azure.as_mut() else { return };
        if d.sync.outbox.is_empty() {
            return;
        }
        let mut by_url: Vec<(String, Vec<Value>)> = Vec::new();
        for n in d.sync.outbox.drain(..) {
            match by_url.iter_mut().find(|(u, _)| *u == n.url) {
                Some((_, items)) => items.push(n.item),
                None => by_url.push((n.url, vec![n.item])),
            }
        }
        by_url
    };
    for (url, items) in batches {
        let app = app.clone();
        tokio::spawn(async move {
            let body = json!({"value": items});
            let client = match reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build() {
                Ok(c) => c,
                Err(_) => return,
            };
            let mut status = None;
            for attempt in 0..2 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_server_error() => status = Some(r.status().as_u16()),
                    Ok(r) => {
                        status = Some(r.status().as_u16());
                        break;
                    }
                    Err(_) => status = None,
                }
            }
            let mut st = app.state();
            if let Some(d) = st.azure.as_mut() {
                let shown: Vec<Value> = items
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        if let Some(m) = i.as_object_mut() {
                            m.remove("clientState");
                        }
                        i
                    })
                    .collect();
                d.sync
                    .deliveries
                    .push(json!({"url": url, "items": shown, "status": status}));
            }
        });
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_round_trips() {
        let f = Frozen {
            epoch: 2,
            from: Some(3),
            to: 9,
            offset: 10,
            issued: 1_700_000_000,
            members: true,
            ids: Some(vec!["a".into(), "b".into()]),
        };
        let back = Frozen::decode('D', &f.encode('D')).unwrap();
        assert_eq!(
            (back.epoch, back.from, back.to, back.offset, back.members),
            (2, Some(3), 9, 10, true)
        );
        assert_eq!(back.ids.unwrap(), vec!["a".to_string(), "b".to_string()]);
        assert!(Frozen::decode('S', &f.encode('D')).is_none());
    }

    #[test]
    fn app_ids_come_out_of_the_path_segment() {
        assert_eq!(
            app_id_of("servicePrincipals(appId='abc')").as_deref(),
            Some("abc")
        );
        assert_eq!(app_id_of("servicePrincipals"), None);
        assert_eq!(
            parse_id_filter("id eq 'a' or id eq 'b'"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }
}
