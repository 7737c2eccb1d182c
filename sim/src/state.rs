//! The simulated world: Okta's users, groups and System Log; each Segment workspace's
//! members, user groups, policies, inventory and audit trail; one store shared by the
//! Public API, SCIM and the push engine.
//!
//! Invariants: every index (`by_login`, `by_email`, `group_by_name`, `user_groups`) is kept
//! in step with the maps it indexes by the mutators below, never by callers. Every
//! Segment write goes through a mutator here and appends exactly its audit event(s).
//! Nothing here does IO or awaits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::cursor::base62_id;
use super::seed::GrantSeed;

use crate::{MINIMAL_ACCESS_ROLE_ID, WORKSPACE_OWNER_ROLE_ID};

pub const OKTA_STATUSES: &[&str] = &[
    "ACTIVE",
    "DEPROVISIONED",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "PROVISIONED",
    "RECOVERY",
    "STAGED",
    "SUSPENDED",
];

/// Segment's standard roles, in the order `/roles` lists them.
pub const ROLE_NAMES: &[(&str, &str)] = &[
    (
        "Workspace Owner",
        "Full access to the workspace, including IAM.",
    ),
    ("Workspace Member", "Base membership of the workspace."),
    (
        "Minimal Workspace Access",
        "View the workspace, no access to its resources.",
    ),
    (
        "Source Admin",
        "Edit access to sources and their connections.",
    ),
    (
        "Source Read-only",
        "Read access to sources and their connections.",
    ),
    ("Function Admin", "Create, edit and delete functions."),
    ("Function Read-only", "Read access to functions."),
    (
        "Warehouse Destination Admin",
        "Edit access to warehouse destinations.",
    ),
    (
        "Warehouse Destination Read-only",
        "Read access to warehouse destinations.",
    ),
    ("Tracking Plan Admin", "Edit access to tracking plans."),
    ("Tracking Plan Read-only", "Read access to tracking plans."),
    (
        "Unify and Engage Admin",
        "Edit access to Unify and Engage spaces.",
    ),
    (
        "Unify and Engage Read-only",
        "Read access to Unify and Engage spaces.",
    ),
    ("Entities Admin", "Edit access to entities."),
    ("Entities Read-only", "Read access to entities."),
    ("Identity Admin", "Manage identity resolution settings."),
    (
        "End User Privacy Admin",
        "Manage end-user privacy settings.",
    ),
];

pub fn role_id(name: &str) -> String {
    match name {
        "Workspace Owner" => WORKSPACE_OWNER_ROLE_ID.to_string(),
        "Minimal Workspace Access" => MINIMAL_ACCESS_ROLE_ID.to_string(),
        _ => base62_id(&format!("segment-role:{name}"), 27),
    }
}

pub fn role_name(id: &str) -> Option<&'static str> {
    ROLE_NAMES
        .iter()
        .map(|(n, _)| *n)
        .find(|n| role_id(n) == id)
}

/// When the seeded world "happened": fixed, so seeded timestamps are stable.
pub fn seed_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

#[derive(Clone, Debug)]
pub struct OktaUser {
    pub id: String,
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub status: String,
    pub created: DateTime<Utc>,
    pub status_changed: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct OktaGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    pub last_membership_updated: DateTime<Utc>,
    pub members: BTreeSet<String>,
    pub pushed_to: Vec<String>,
}

#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub public_key_pem: String,
    pub scopes: Vec<String>,
    pub dpop: bool,
    pub admin_role: bool,
}

/// One System Log event: the JSON plus what filtering needs.
#[derive(Clone, Debug)]
pub struct LogEvent {
    pub published: DateTime<Utc>,
    pub json: Value,
}

pub struct Okta {
    pub token: String,
    pub app_id: String,
    pub rate_limit: Option<u32>,
    pub clients: Vec<OAuthClient>,
    pub users: BTreeMap<String, OktaUser>,
    pub by_login: HashMap<String, String>,
    pub groups: BTreeMap<String, OktaGroup>,
    pub group_by_name: HashMap<String, String>,
    pub user_groups: HashMap<String, BTreeSet<String>>,
    pub log: Vec<LogEvent>,
    /// The seed's `log_page_cap`: System Log polling pages stop at this many events.
    pub log_page_cap: Option<usize>,
}

/// `firstName` (`part` 0) or `lastName` (1) for a user: the given one when non-empty,
/// else derived from the login, since Okta requires both and its SDKs reject empty
/// strings. `olivia.chen@acme.test` → Olivia / Chen; a one-word login (`ops@…`) gives
/// Ops / Ops.
pub fn or_from_login(given: &Option<String>, login: &str, part: usize) -> String {
    if let Some(g) = given.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        return g.to_string();
    }
    let local = login.split('@').next().unwrap_or(login);
    let words: Vec<String> = local
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(c) => c.to_uppercase().chain(cs).collect::<String>(),
                None => String::new(),
            }
        })
        .collect();
    match (words.first(), part) {
        (None, _) => "User".to_string(),
        (Some(first), 0) => first.clone(),
        (Some(first), _) => match words.get(1..) {
            Some(rest) if !rest.is_empty() => rest.join(" "),
            _ => first.clone(),
        },
    }
}

impl Okta {
    pub fn user_by_login(&self, login: &str) -> Option<&OktaUser> {
        self.by_login
            .get(&login.to_lowercase())
            .and_then(|id| self.users.get(id))
    }
    pub fn user_by_id_or_login(&self, key: &str) -> Option<&OktaUser> {
        self.users.get(key).or_else(|| self.user_by_login(key))
    }
    pub fn group_by_name(&self, name: &str) -> Option<&OktaGroup> {
        self.group_by_name
            .get(name)
            .and_then(|id| self.groups.get(id))
    }
    pub fn insert_user(&mut self, user: OktaUser) {
        self.by_login
            .insert(user.login.to_lowercase(), user.id.clone());
        self.users.insert(user.id.clone(), user);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermResource {
    pub id: String,
    pub kind: String,
    pub labels: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub role_id: String,
    pub resources: Vec<PermResource>,
}

#[derive(Clone, Debug)]
pub struct SegUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub permissions: Vec<Permission>,
}

#[derive(Clone, Debug)]
pub struct SegGroup {
    pub id: String,
    pub name: String,
    pub members: BTreeSet<String>,
    pub permissions: Vec<Permission>,
}

#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct UiUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

#[derive(Clone, Debug)]
pub struct Audit {
    pub id: u64,
    pub timestamp: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub actor_email: Option<String>,
    pub resource_id: String,
    pub resource_type: String,
    pub resource_name: String,
}

/// Who makes a Segment write.
#[derive(Clone, Debug)]
pub struct Actor {
    pub actor: String,
    pub email: Option<String>,
}

impl Actor {
    pub fn scim() -> Actor {
        Actor {
            actor: "scim/sso-sync".to_string(),
            email: None,
        }
    }
}

pub struct Workspace {
    pub id: String,
    pub name: String,
    pub token: String,
    pub token_id: String,
    pub scim_token: Option<String>,
    pub rate_limit: Option<u32>,
    pub ui_users: Vec<UiUser>,
    pub sources: Vec<Item>,
    pub warehouses: Vec<Item>,
    pub functions: Vec<Item>,
    pub spaces: Vec<Item>,
    pub labels: Vec<(String, String, Option<String>)>,
    pub users: BTreeMap<String, SegUser>,
    pub by_email: HashMap<String, String>,
    pub groups: BTreeMap<String, SegGroup>,
    pub group_by_name: HashMap<String, String>,
    pub audit: Vec<Audit>,
    pub invites: Vec<String>,
    /// The seed's `audit_resource_types`: the `resourceType` the audit trail shows for
    /// our `user` / `user_group`.
    pub audit_resource_types: BTreeMap<String, String>,
    /// While set (`POST /_sim/silence`), changes write no audit event: a lost event.
    pub silent: bool,
}

impl Workspace {
    /// The `resourceType` an audit event of ours shows on the API.
    pub fn audit_resource_type<'a>(&'a self, ours: &'a str) -> &'a str {
        self.audit_resource_types
            .get(ours)
            .map_or(ours, String::as_str)
    }
}

pub fn segment_user_id(email: &str) -> String {
    base62_id(&format!("segment-user:{}", email.to_lowercase()), 22)
}

pub fn minimal_permission(ws_id: &str) -> Permission {
    Permission {
        role_id: MINIMAL_ACCESS_ROLE_ID.to_string(),
        resources: vec![PermResource {
            id: ws_id.to_string(),
            kind: "WORKSPACE".to_string(),
            labels: vec![],
        }],
    }
}

impl Workspace {
    pub fn user_by_email(&self, email: &str) -> Option<&SegUser> {
        self.by_email
            .get(&email.to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    pub fn group_id_by_name(&self, name: &str) -> Option<String> {
        self.group_by_name.get(name).cloned()
    }

    pub fn groups_of(&self, user_id: &str) -> Vec<&SegGroup> {
        self.groups
            .values()
            .filter(|g| g.members.contains(user_id))
            .collect()
    }

    fn audit(
        &mut self,
        counter: &mut u64,
        kind: &str,
        actor: &Actor,
        rtype: &str,
        rid: &str,
        rname: &str,
    ) {
        *counter += 1;
        if self.silent {
            return;
        }
        self.audit.push(Audit {
            id: *counter,
            timestamp: Utc::now(),
            kind: kind.to_string(),
            actor: actor.actor.clone(),
            actor_email: actor.email.clone(),
            resource_id: rid.to_string(),
            resource_type: rtype.to_string(),
            resource_name: rname.to_string(),
        });
    }

    /// Adds `email` to the workspace (Minimal Workspace Access) unless present; returns the
    /// id and whether it was new. `sso_audit` writes `User Added via SSO`.
    pub fn ensure_user(
        &mut self,
        counter: &mut u64,
        email: &str,
        name: &str,
        sso_audit: Option<&Actor>,
    ) -> (String, bool) {
        if let Some(id) = self.by_email.get(&email.to_lowercase()) {
            return (id.clone(), false);
        }
        let id = segment_user_id(email);
        let user = SegUser {
            id: id.clone(),
            email: email.to_string(),
            name: name.to_string(),
            permissions: vec![minimal_permission(&self.id)],
        };
        self.by_email.insert(email.to_lowercase(), id.clone());
        self.users.insert(id.clone(), user);
        if let Some(actor) = sso_audit {
            self.audit(counter, "User Added via SSO", actor, "user", &id, email);
        }
        (id, true)
    }

    /// Removes a user from the workspace and every group (`User Removed`).
    pub fn remove_user(&mut self, counter: &mut u64, user_id: &str, actor: &Actor) -> bool {
        let Some(user) = self.users.remove(user_id) else {
            return false;
        };
        self.by_email.remove(&user.email.to_lowercase());
        for g in self.groups.values_mut() {
            g.members.remove(user_id);
        }
        self.audit(counter, "User Removed", actor, "user", user_id, &user.email);
        true
    }

    /// A new group with Minimal Workspace Access. Documented for groups that SCIM creates;
    /// what a group made through the Public API's `POST /groups` starts with is not
    /// documented, and giving it the same is a guess.
    pub fn create_group(&mut self, counter: &mut u64, name: &str, actor: &Actor) -> String {
        let id = base62_id(&format!("segment-group:{}:{name}", self.id), 22);
        let group = SegGroup {
            id: id.clone(),
            name: name.to_string(),
            members: BTreeSet::new(),
            permissions: vec![minimal_permission(&self.id)],
        };
        self.group_by_name.insert(name.to_string(), id.clone());
        self.groups.insert(id.clone(), group);
        self.audit(
            counter,
            "User Group Created",
            actor,
            "user_group",
            &id,
            name,
        );
        id
    }

    pub fn delete_group(&mut self, counter: &mut u64, id: &str, actor: &Actor) -> bool {
        let Some(g) = self.groups.remove(id) else {
            return false;
        };
        self.group_by_name.remove(&g.name);
        self.audit(
            counter,
            "User Group Deleted",
            actor,
            "user_group",
            id,
            &g.name,
        );
        true
    }

    /// Adds members by email; emails not yet in the workspace join with Minimal Workspace
    /// Access. One `User Added To User Group` event when anything changed.
    pub fn add_members(
        &mut self,
        counter: &mut u64,
        group_id: &str,
        emails: &[String],
        actor: &Actor,
        names: &dyn Fn(&str) -> String,
    ) -> bool {
        if !self.groups.contains_key(group_id) {
            return false;
        }
        let mut changed = false;
        for email in emails {
            let (uid, _) = self.ensure_user(counter, email, &names(email), None);
            if let Some(g) = self.groups.get_mut(group_id) {
                changed |= g.members.insert(uid);
            }
        }
        if changed {
            let name = self
                .groups
                .get(group_id)
                .map(|g| g.name.clone())
                .unwrap_or_default();
            self.audit(
                counter,
                "User Added To User Group",
                actor,
                "user_group",
                group_id,
                &name,
            );
        }
        true
    }

    pub fn remove_members(
        &mut self,
        counter: &mut u64,
        group_id: &str,
        emails: &[String],
        actor: &Actor,
    ) -> bool {
        let ids: Vec<String> = emails
            .iter()
            .filter_map(|e| self.by_email.get(&e.to_lowercase()).cloned())
            .collect();
        let Some(g) = self.groups.get_mut(group_id) else {
            return false;
        };
        let mut changed = false;
        for id in ids {
            changed |= g.members.remove(&id);
        }
        let name = g.name.clone();
        if changed {
            self.audit(
                counter,
                "User Removed From User Group",
                actor,
                "user_group",
                group_id,
                &name,
            );
        }
        true
    }

    /// POST (add) or PUT (replace) permissions of a user or group.
    pub fn write_permissions(
        &mut self,
        counter: &mut u64,
        subject: Subject,
        id: &str,
        perms: Vec<Permission>,
        replace: bool,
        actor: &Actor,
    ) -> bool {
        let (list, name, rtype, kind) = match subject {
            Subject::User => match self.users.get_mut(id) {
                Some(u) => (
                    &mut u.permissions,
                    u.email.clone(),
                    "user",
                    "User Policy Updated",
                ),
                None => return false,
            },
            Subject::Group => match self.groups.get_mut(id) {
                Some(g) => (
                    &mut g.permissions,
                    g.name.clone(),
                    "user_group",
                    "User Group Policy Updated",
                ),
                None => return false,
            },
        };
        if replace {
            *list = perms;
        } else {
            for p in perms {
                if !list.contains(&p) {
                    list.push(p);
                }
            }
        }
        let kind = if replace { kind } else { "Policy Created" };
        self.audit(counter, kind, actor, rtype, id, &name);
        true
    }

    /// Resolves a seed grant (mappings syntax) into a permission.
    pub fn resolve_grant(&self, g: &GrantSeed) -> Result<Permission, String> {
        let role_id = if role_name(&g.role).is_some() {
            g.role.clone()
        } else if ROLE_NAMES.iter().any(|(n, _)| *n == g.role) {
            role_id(&g.role)
        } else {
            return Err(format!("unknown role {:?}", g.role));
        };
        let find =
            |items: &[Item], keys: &[String], kind: &str| -> Result<Vec<PermResource>, String> {
                keys.iter()
                    .map(|k| {
                        items
                            .iter()
                            .find(|i| &i.id == k || &i.slug == k || &i.name == k)
                            .map(|i| PermResource {
                                id: i.id.clone(),
                                kind: kind.to_string(),
                                labels: vec![],
                            })
                            .ok_or_else(|| format!("unknown {} {k:?}", kind.to_lowercase()))
                    })
                    .collect()
            };
        let resources = if let Some(s) = &g.sources {
            find(&self.sources, s, "SOURCE")?
        } else if let Some(s) = &g.warehouses {
            find(&self.warehouses, s, "WAREHOUSE")?
        } else if let Some(s) = &g.functions {
            find(&self.functions, s, "FUNCTION")?
        } else if let Some(s) = &g.spaces {
            find(&self.spaces, s, "SPACE")?
        } else {
            let labels = g
                .labels
                .as_ref()
                .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            vec![PermResource {
                id: self.id.clone(),
                kind: "WORKSPACE".to_string(),
                labels,
            }]
        };
        Ok(Permission { role_id, resources })
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Subject {
    User,
    Group,
}

pub struct State {
    pub okta: Okta,
    /// The Entra ID tenant (`[azure]`), when the seed has one.
    pub azure: Option<super::graph_state::Directory>,
    /// Whether the seed had an `[okta]` section (else the org is a locked placeholder).
    pub seeded_okta: bool,
    pub workspaces: BTreeMap<String, Workspace>,
    pub audit_counter: u64,
    /// Carries the System Log's length after each append: wakes the Event Hook delivery
    /// task (`hooks::run`). Sending on it never blocks or awaits.
    pub log_signal: tokio::sync::watch::Sender<usize>,
    /// While set, changes leave no trace in the event sources: no System Log entry (so no
    /// Event Hook), no Segment audit event. Set by `POST /_sim/silence` or for one call by
    /// `"silent": true` on an Okta control call; the state changes all the same.
    pub silent: bool,
}

impl State {
    /// The display name Segment shows for an email: the Okta user's name when known.
    pub fn name_for(&self, email: &str) -> String {
        self.okta
            .user_by_login(email)
            .map(|u| {
                format!("{} {}", u.first_name, u.last_name)
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// Appends a System Log event built by the caller, and signals the Event Hook
    /// delivery task so the event is queued for every hook registered before it.
    pub fn log(&mut self, json: Value) {
        if self.silent {
            return;
        }
        self.okta.log.push(LogEvent {
            published: Utc::now(),
            json,
        });
        self.log_signal.send_replace(self.okta.log.len());
    }

    /// Turns the event sources off (`true`) or on again, everywhere.
    pub fn set_silent(&mut self, on: bool) {
        self.silent = on;
        for ws in self.workspaces.values_mut() {
            ws.silent = on;
        }
    }

    pub fn new_uuid() -> String {
        let b: [u8; 16] = rand::random();
        let r: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &r[0..8],
            &r[8..12],
            &r[12..16],
            &r[16..20],
            &r[20..32]
        )
    }
}
