//! The simulated Entra ID tenant (`[azure]`): users, groups with direct user and group
//! members, the directory audit log, issued Graph tokens, and the mutators the control
//! API uses.
//!
//! Invariants: `by_upn` follows `users`; every mutator appends exactly its directory
//! audit record(s) (`activityDateTime` = now, initiated by the sim's admin) and returns
//! the provisioning changes it causes, which the caller queues for the next cycle.
//! Entra provisions only **direct** members of assigned groups, so adding a group to a
//! group causes no change. Nothing here does IO or awaits.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::push::{Change, Op};
use super::seed::{line_of, AzureSeed};
use super::state::seed_epoch;
use super::SimError;

pub const DEFAULT_ROLES: &[&str] = &[
    "GroupMember.Read.All",
    "User.Read.All",
    "AuditLog.Read.All",
    "Application.Read.All",
    "Synchronization.Read.All",
];
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

#[derive(Clone, Debug)]
pub struct AzUser {
    pub id: String,
    pub upn: String,
    pub mail: String,
    pub display_name: String,
    pub account_enabled: bool,
}

#[derive(Clone, Debug)]
pub struct AzGroup {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    /// Direct user members (ids).
    pub members: BTreeSet<String>,
    /// Direct group members: nested groups (ids).
    pub member_groups: BTreeSet<String>,
    pub pushed_to: Vec<String>,
}

/// The certificate the app registration trusts: its thumbprint and public key.
#[derive(Clone, Debug)]
pub struct Certificate {
    pub x5t: String,
    /// SubjectPublicKeyInfo as a `PUBLIC KEY` PEM, for verifying assertions.
    pub public_key_pem: String,
}

pub struct Issued {
    pub expires: DateTime<Utc>,
    pub roles: Vec<String>,
}

/// A 10-second window counting a weighted budget (resource units, or requests).
#[derive(Default)]
pub struct Window {
    start: Option<Instant>,
    used: u32,
}

impl Window {
    /// Charges `cost` against `budget`; `Err(wait)` when the window is spent.
    pub fn charge(&mut self, cost: u32, budget: u32) -> Result<u32, Duration> {
        let now = Instant::now();
        let span = Duration::from_secs(10);
        let start = match self.start {
            Some(s) if now.duration_since(s) < span => s,
            _ => {
                self.used = 0;
                self.start = Some(now);
                now
            }
        };
        if self.used.saturating_add(cost) > budget {
            return Err(span.saturating_sub(now.duration_since(start)));
        }
        self.used += cost;
        Ok(self.used)
    }
}

pub struct Directory {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub certificate: Option<Certificate>,
    pub ru_per_10s: Option<u32>,
    pub token_lifetime: Duration,
    pub roles: Vec<String>,
    pub empty_first_pages: bool,
    pub users: BTreeMap<String, AzUser>,
    pub by_upn: HashMap<String, String>,
    pub groups: BTreeMap<String, AzGroup>,
    /// Directory audit records, oldest first.
    pub audits: Vec<(DateTime<Utc>, Value)>,
    pub tokens: HashMap<String, Issued>,
    pub jtis: HashSet<String>,
    pub ru: Window,
    pub audit_window: Window,
    /// Requests answered, by "METHOD /route status" (the route's template).
    pub requests: BTreeMap<String, u64>,
    /// Provisioning changes waiting for the next cycle.
    pub cycle_queue: VecDeque<Change>,
    /// Delta, provisioning, subscriptions (`graph_sync.rs`).
    pub sync: super::graph_sync::Sync,
}

/// A GUID-shaped id derived from `seed` (stable across runs).
pub fn guid_from(seed: &str) -> String {
    let h: String = Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Checks an `[azure]` seed for dangling references before anything starts.
pub fn check_seed(az: &AzureSeed, workspaces: &HashSet<&str>, text: &str) -> Result<(), SimError> {
    let bad = |key: &str, value: &str, what: &str| SimError::Seed {
        message: format!("line {}: `{key}`: {what} {value:?}", line_of(text, value)),
    };
    if az.client_secret.is_none() && az.certificate_pem.is_none() {
        return Err(SimError::Seed {
            message: "[azure] needs `client_secret` or `certificate_pem` (the credential the app registration accepts)".to_string(),
        });
    }
    if let Some(pem) = &az.certificate_pem {
        parse_certificate(pem).map_err(|why| SimError::Seed {
            message: format!("[azure] `certificate_pem`: {why}"),
        })?;
    }
    let upns: HashSet<String> = az.user.iter().map(|u| u.upn.to_lowercase()).collect();
    for g in &az.group {
        for m in &g.members {
            if !upns.contains(&m.to_lowercase()) {
                return Err(bad("azure.group.members", m, "unknown Entra user"));
            }
        }
        for w in &g.pushed_to {
            if !workspaces.contains(w.as_str()) {
                return Err(bad("azure.group.pushed_to", w, "unknown workspace"));
            }
        }
        for n in &g.member_groups {
            let by_name = az.group.iter().filter(|o| o.name == *n).count();
            let by_id = az.group.iter().any(|o| o.id.as_deref() == Some(n.as_str()));
            if by_name > 1 && !by_id {
                return Err(bad(
                    "azure.group.member_groups",
                    n,
                    "several groups carry this name; give them `id`s and name the nested one by id:",
                ));
            }
            if by_name == 0 && !by_id {
                return Err(bad("azure.group.member_groups", n, "unknown Entra group"));
            }
        }
    }
    Ok(())
}

impl Directory {
    pub fn from_seed(az: &AzureSeed) -> Directory {
        let epoch = seed_epoch();
        let mut d = Directory {
            tenant_id: az.tenant_id.clone(),
            client_id: az.client_id.clone(),
            client_secret: az.client_secret.clone(),
            certificate: az
                .certificate_pem
                .as_deref()
                .and_then(|p| parse_certificate(p).ok()),
            ru_per_10s: az.resource_units_per_10s,
            token_lifetime: az.token_lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME),
            roles: az
                .roles
                .clone()
                .unwrap_or_else(|| DEFAULT_ROLES.iter().map(|s| s.to_string()).collect()),
            empty_first_pages: az.empty_first_pages,
            users: BTreeMap::new(),
            by_upn: HashMap::new(),
            groups: BTreeMap::new(),
            audits: Vec::new(),
            tokens: HashMap::new(),
            jtis: HashSet::new(),
            ru: Window::default(),
            audit_window: Window::default(),
            requests: BTreeMap::new(),
            cycle_queue: VecDeque::new(),
            sync: super::graph_sync::Sync::new(az),
        };
        for u in &az.user {
            d.insert_user(AzUser {
                id: u
                    .id
                    .clone()
                    .unwrap_or_else(|| guid_from(&format!("azure-user:{}", u.upn.to_lowercase()))),
                upn: u.upn.clone(),
                mail: u.mail.clone().unwrap_or_else(|| u.upn.clone()),
                display_name: u
                    .display_name
                    .clone()
                    .unwrap_or_else(|| display_from(&u.upn)),
                account_enabled: u.account_enabled,
            });
        }
        let ids: Vec<String> = az
            .group
            .iter()
            .enumerate()
            .map(|(i, g)| {
                g.id.clone().unwrap_or_else(|| {
                    // Same-named groups get distinct ids by their position.
                    let twin = az.group[..i].iter().filter(|o| o.name == g.name).count();
                    guid_from(&format!("azure-group:{}:{twin}", g.name))
                })
            })
            .collect();
        for (g, id) in az.group.iter().zip(&ids) {
            let members = g
                .members
                .iter()
                .filter_map(|m| d.by_upn.get(&m.to_lowercase()).cloned())
                .collect();
            let member_groups = g
                .member_groups
                .iter()
                .filter_map(|n| {
                    az.group
                        .iter()
                        .zip(&ids)
                        .find(|(o, oid)| o.id.as_deref() == Some(n.as_str()) || **oid == *n)
                        .or_else(|| az.group.iter().zip(&ids).find(|(o, _)| o.name == *n))
                        .map(|(_, oid)| oid.clone())
                })
                .collect();
            d.groups.insert(
                id.clone(),
                AzGroup {
                    id: id.clone(),
                    name: g.name.clone(),
                    created: epoch,
                    members,
                    member_groups,
                    pushed_to: g.pushed_to.clone(),
                },
            );
        }
        d
    }

    fn insert_user(&mut self, u: AzUser) {
        self.by_upn.insert(u.upn.to_lowercase(), u.id.clone());
        self.users.insert(u.id.clone(), u);
    }

    pub fn user_by_key(&self, key: &str) -> Option<&AzUser> {
        self.users.get(key).or_else(|| {
            self.by_upn
                .get(&key.to_lowercase())
                .and_then(|id| self.users.get(id))
        })
    }

    /// The one group with this name or id; `Err` says why not.
    pub fn group_id(&self, name_or_id: &str) -> Result<String, &'static str> {
        if self.groups.contains_key(name_or_id) {
            return Ok(name_or_id.to_string());
        }
        let named: Vec<&String> = self
            .groups
            .values()
            .filter(|g| g.name == name_or_id)
            .map(|g| &g.id)
            .collect();
        match named.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err("unknown group"),
            _ => Err("several groups carry this name; use its id"),
        }
    }

    /// Every user a group reaches at any depth, and every group below it (cycle-safe).
    pub fn transitive(&self, group_id: &str) -> (Vec<String>, Vec<String>) {
        let mut users = BTreeSet::new();
        let mut groups = Vec::new();
        let mut seen = HashSet::from([group_id.to_string()]);
        let mut queue = VecDeque::from([group_id.to_string()]);
        while let Some(gid) = queue.pop_front() {
            let Some(g) = self.groups.get(&gid) else {
                continue;
            };
            users.extend(g.members.iter().cloned());
            for child in &g.member_groups {
                if seen.insert(child.clone()) {
                    groups.push(child.clone());
                    queue.push_back(child.clone());
                }
            }
        }
        (users.into_iter().collect(), groups)
    }

    // ---- mutators (control API) -------------------------------------------------------

    fn audit(&mut self, activity: &str, category: &str, targets: Vec<Value>) {
        let now = Utc::now();
        let n = self.audits.len();
        let record = json!({
            "id": format!("Directory_{}", guid_from(&format!("audit:{n}:{}", now.timestamp_nanos_opt().unwrap_or(0)))),
            "category": category,
            "correlationId": guid_from(&format!("corr:{n}")),
            "result": "success",
            "resultReason": "",
            "activityDisplayName": activity,
            "activityDateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "loggedByService": "Core Directory",
            "operationType": if activity.starts_with("Add") { "Assign" } else { "Update" },
            "initiatedBy": {"app": null, "user": {"id": guid_from("azure-admin"), "displayName": null,
                             "userPrincipalName": "admin@sim.test", "ipAddress": "127.0.0.1", "userType": null}},
            "targetResources": targets,
            "additionalDetails": [],
        });
        self.audits.push((now, record));
    }

    fn user_target(u: &AzUser, props: Vec<Value>) -> Value {
        json!({"id": u.id, "displayName": null, "type": "User", "userPrincipalName": u.upn,
               "groupType": null, "modifiedProperties": props})
    }

    fn group_props(g: &AzGroup, add: bool) -> Vec<Value> {
        let (o1, n1) = old_new(add, Value::String(format!("\"{}\"", g.id)));
        let (o2, n2) = old_new(add, Value::String(format!("\"{}\"", g.name)));
        vec![
            json!({"displayName": "Group.ObjectID", "oldValue": o1, "newValue": n1}),
            json!({"displayName": "Group.DisplayName", "oldValue": o2, "newValue": n2}),
        ]
    }

    /// The pushes a (direct) membership change causes in every workspace the group goes to.
    fn member_changes(&self, g: &AzGroup, u: &AzUser, add: bool) -> Vec<Change> {
        if add && !u.account_enabled {
            return vec![];
        }
        g.pushed_to
            .iter()
            .map(|ws| Change {
                workspace: ws.clone(),
                op: if add {
                    Op::Add {
                        group: g.name.clone(),
                        email: u.upn.clone(),
                    }
                } else {
                    Op::Remove {
                        group: g.name.clone(),
                        email: u.upn.clone(),
                    }
                },
            })
            .collect()
    }

    /// Workspaces a user reaches through a pushed group they are a direct member of.
    fn pushed_groups_of(&self, user_id: &str) -> Vec<&AzGroup> {
        self.groups
            .values()
            .filter(|g| g.members.contains(user_id) && !g.pushed_to.is_empty())
            .collect()
    }

    pub fn add_user(
        &mut self,
        upn: &str,
        enabled: bool,
        mail: Option<String>,
    ) -> Result<Value, &'static str> {
        if self.by_upn.contains_key(&upn.to_lowercase()) {
            return Err("a user with this upn exists");
        }
        let u = AzUser {
            id: guid_from(&format!("azure-user:{}", upn.to_lowercase())),
            upn: upn.to_string(),
            mail: mail.unwrap_or_else(|| upn.to_string()),
            display_name: display_from(upn),
            account_enabled: enabled,
        };
        let props = vec![
            json!({"displayName": "AccountEnabled", "oldValue": "[]", "newValue": format!("[{enabled}]")}),
        ];
        self.audit(
            "Add user",
            "UserManagement",
            vec![Self::user_target(&u, props)],
        );
        let out = json!({"id": u.id, "upn": u.upn, "account_enabled": u.account_enabled});
        self.insert_user(u);
        Ok(out)
    }

    pub fn delete_user(&mut self, upn: &str) -> Result<Vec<Change>, &'static str> {
        let u = self.user_by_key(upn).cloned().ok_or("unknown user")?;
        let changes = self.deprovision_changes(&u);
        let mut left = Vec::new();
        for g in self.groups.values_mut() {
            if g.members.remove(&u.id) {
                left.push(g.id.clone());
            }
        }
        for gid in left {
            self.sync
                .group_changed(&gid, Some((&u.id, "user", false)), &self.tenant_id);
        }
        self.users.remove(&u.id);
        self.by_upn.remove(&u.upn.to_lowercase());
        self.audit(
            "Delete user",
            "UserManagement",
            vec![Self::user_target(&u, vec![])],
        );
        Ok(changes)
    }

    fn deprovision_changes(&self, u: &AzUser) -> Vec<Change> {
        let mut targets: Vec<&String> = self
            .pushed_groups_of(&u.id)
            .into_iter()
            .flat_map(|g| g.pushed_to.iter())
            .collect();
        targets.sort();
        targets.dedup();
        targets
            .into_iter()
            .map(|ws| Change {
                workspace: ws.clone(),
                op: Op::Deprovision {
                    email: u.upn.clone(),
                },
            })
            .collect()
    }

    pub fn membership(
        &mut self,
        group: &str,
        upn: &str,
        add: bool,
    ) -> Result<(bool, Vec<Change>), &'static str> {
        let gid = self.group_id(group)?;
        let u = self.user_by_key(upn).cloned().ok_or("unknown user")?;
        let Some(g) = self.groups.get_mut(&gid) else {
            return Err("unknown group");
        };
        let changed = if add {
            g.members.insert(u.id.clone())
        } else {
            g.members.remove(&u.id)
        };
        if !changed {
            return Ok((false, vec![]));
        }
        let g = g.clone();
        self.sync
            .group_changed(&g.id, Some((&u.id, "user", add)), &self.tenant_id);
        let activity = if add {
            "Add member to group"
        } else {
            "Remove member from group"
        };
        let props = Self::group_props(&g, add);
        self.audit(
            activity,
            "GroupManagement",
            vec![
                Self::user_target(&u, props),
                json!({"id": g.id, "displayName": null, "type": "Group", "userPrincipalName": null, "groupType": "unknownFutureValue", "modifiedProperties": []}),
            ],
        );
        Ok((true, self.member_changes(&g, &u, add)))
    }

    /// Nests `child` inside `group`. Entra provisions nothing for it.
    pub fn add_member_group(&mut self, group: &str, child: &str) -> Result<bool, &'static str> {
        let gid = self.group_id(group)?;
        let cid = self.group_id(child)?;
        if gid == cid {
            return Err("a group cannot contain itself");
        }
        let Some(g) = self.groups.get_mut(&gid) else {
            return Err("unknown group");
        };
        if !g.member_groups.insert(cid.clone()) {
            return Ok(false);
        }
        let g = g.clone();
        self.sync
            .group_changed(&g.id, Some((&cid, "group", true)), &self.tenant_id);
        let child_name = self
            .groups
            .get(&cid)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let (o1, n1) = old_new(true, Value::String(format!("\"{}\"", g.id)));
        let (o2, n2) = old_new(true, Value::String(format!("\"{}\"", g.name)));
        self.audit(
            "Add member to group",
            "GroupManagement",
            vec![
                json!({"id": cid, "displayName": child_name, "type": "Group", "userPrincipalName": null, "groupType": "unknownFutureValue",
                       "modifiedProperties": [{"displayName": "Group.ObjectID", "oldValue": o1, "newValue": n1},
                                              {"displayName": "Group.DisplayName", "oldValue": o2, "newValue": n2}]}),
                json!({"id": g.id, "displayName": null, "type": "Group", "userPrincipalName": null, "groupType": "unknownFutureValue", "modifiedProperties": []}),
            ],
        );
        Ok(true)
    }

    pub fn set_enabled(
        &mut self,
        upn: &str,
        enabled: bool,
    ) -> Result<(bool, Vec<Change>), &'static str> {
        let id = self
            .user_by_key(upn)
            .map(|u| u.id.clone())
            .ok_or("unknown user")?;
        let Some(u) = self.users.get_mut(&id) else {
            return Err("unknown user");
        };
        if u.account_enabled == enabled {
            return Ok((false, vec![]));
        }
        u.account_enabled = enabled;
        let u = u.clone();
        let props = vec![
            json!({"displayName": "AccountEnabled", "oldValue": format!("[{}]", !enabled), "newValue": format!("[{enabled}]")}),
        ];
        let activity = if enabled {
            "Enable account"
        } else {
            "Disable account"
        };
        self.audit(
            activity,
            "UserManagement",
            vec![Self::user_target(&u, props)],
        );
        let changes = if enabled {
            self.pushed_groups_of(&u.id)
                .into_iter()
                .flat_map(|g| self.member_changes(g, &u, true))
                .collect()
        } else {
            self.deprovision_changes(&u)
        };
        Ok((true, changes))
    }

    /// Drops every issued token (`POST /_sim/azure/tokens/revoke`): the next call with a
    /// cached one gets 401, as after a credential rotation.
    pub fn revoke_tokens(&mut self) -> usize {
        let n = self.tokens.len();
        self.tokens.clear();
        n
    }

    /// `/_sim/state`'s `azure`.
    pub fn dump(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| json!({"id": u.id, "upn": u.upn, "mail": u.mail, "account_enabled": u.account_enabled}))
            .collect();
        let groups: Vec<Value> = self
            .groups
            .values()
            .map(|g| {
                let members: Vec<&str> = g
                    .members
                    .iter()
                    .filter_map(|id| self.users.get(id))
                    .map(|u| u.upn.as_str())
                    .collect();
                let nested: Vec<&str> = g
                    .member_groups
                    .iter()
                    .filter_map(|id| self.groups.get(id))
                    .map(|c| c.name.as_str())
                    .collect();
                json!({"id": g.id, "name": g.name, "members": members, "member_groups": nested, "pushed_to": g.pushed_to})
            })
            .collect();
        let audits: Vec<&Value> = self.audits.iter().map(|(_, v)| v).collect();
        let queue: Vec<Value> = self.cycle_queue.iter().map(Change::to_json).collect();
        let mut out = json!({"tenant_id": self.tenant_id, "client_id": self.client_id, "users": users, "groups": groups,
               "directory_audits": audits, "requests": self.requests, "cycle_queue": queue});
        self.sync.dump_into(&mut out);
        out
    }
}

fn old_new(add: bool, v: Value) -> (Value, Value) {
    if add {
        (Value::Null, v)
    } else {
        (v, Value::Null)
    }
}

fn display_from(upn: &str) -> String {
    let local = upn.split('@').next().unwrap_or(upn);
    let mut c = local.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

// ---- certificates ------------------------------------------------------------------------

/// One DER element: its tag, its content, the whole element, and what follows it.
type Der<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn der_next(b: &[u8]) -> Option<Der<'_>> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[hdr..end], &b[..end], &b[end..]))
}

/// The thumbprint and public key of a PEM X.509 certificate.
pub fn parse_certificate(pem: &str) -> Result<Certificate, String> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem.find(begin).ok_or("no PEM CERTIFICATE block")? + begin.len();
    let stop = start
        + pem[start..]
            .find(end)
            .ok_or("unterminated CERTIFICATE block")?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| "the CERTIFICATE block is not base64")?;
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    let x5t = URL_SAFE_NO_PAD.encode(sha1.as_ref());
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, sigAlg,
    //   issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }
    let not_der = || "the certificate is not DER X.509".to_string();
    let (_, cert, _, _) = der_next(&der).ok_or_else(not_der)?;
    let (_, tbs, _, _) = der_next(cert).ok_or_else(not_der)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (tag, _, whole, next) = der_next(rest).ok_or_else(not_der)?;
        if !(fields.is_empty() && tag == 0xA0) {
            fields.push(whole);
        }
        rest = next;
    }
    let spki = fields.get(5).ok_or_else(not_der)?;
    let body = STANDARD.encode(spki);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    Ok(Certificate {
        x5t,
        public_key_pem: format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        ),
    })
}
