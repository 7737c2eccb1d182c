//! Rules + the live catalog + the IdP read → the desired state of one workspace. Pure.
//!
//! Contract:
//! - No IO and no clock: everything comes in as arguments.
//! - A name that does not resolve (IdP group, role, source, label, warehouse, function,
//!   space) becomes an [`Unresolved`] entry, never a guess. What depends on it is left out
//!   of the desired state: an unresolved IdP group says nothing about its mirror group or
//!   its members; an unresolved grant leaves that group's permissions unchecked.
//! - Grants are compared as *atoms* (one role on one resource): Segment's effective access
//!   is the union of policies, so `{Source Admin: [a, b]}` and `{Source Admin: [a]}, {Source
//!   Admin: [b]}` are the same access and must not read as drift.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{PolicyConfig, UnmanagedUsers};
use crate::mapping::{ExceptionRule, GrantRule, GrantScope, Origin, RoleRef, WorkspaceMapping};
use crate::model::{
    Catalog, CatalogItem, Email, Grant, GroupRead, GroupRef, IdpGroup, Label, Resource,
    ResourceType, Role,
};

/// A name in a mapping that the catalog or the IdP does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub origin: Origin,
    /// The name as written.
    pub name: String,
    /// "IdP group", "role", "source", "label", "warehouse", "function", "space".
    pub what: &'static str,
    /// Why, with a near name when there is one.
    pub reason: String,
}

/// One mapped group, resolved as far as possible.
#[derive(Clone, Debug)]
pub struct DesiredGroup {
    pub origin: Origin,
    pub idp_ref: GroupRef,
    /// The IdP group with its members; `None` when it did not resolve.
    pub idp: Option<IdpGroup>,
    /// The mirror group's name in Segment; `None` only for an unresolved `idp_group_id`
    /// mapping without `segment_group`.
    pub mirror: Option<String>,
    /// The mapped grants; `None` when one of them did not resolve.
    pub grants: Option<Vec<Grant>>,
    pub justification: Option<String>,
    pub ticket: Option<String>,
}

impl DesiredGroup {
    /// The IdP group's display name, for messages.
    pub fn idp_name(&self) -> String {
        match (&self.idp, &self.idp_ref) {
            (Some(g), _) => g.name.clone(),
            (None, r) => r.text().to_string(),
        }
    }
    pub fn grants_owner(&self) -> bool {
        self.grants
            .as_ref()
            .is_some_and(|gs| gs.iter().any(Grant::is_owner))
    }
}

/// An exception with its grants resolved against the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredException {
    pub rule: ExceptionRule,
    pub grants: Vec<Grant>,
    /// Mirror group names of the IdP groups in `groups`.
    pub mirror_groups: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Desired {
    pub workspace: String,
    pub workspace_id: String,
    pub groups: Vec<DesiredGroup>,
    pub exceptions: Vec<DesiredException>,
    pub unresolved: Vec<Unresolved>,
    pub allow: BTreeSet<Email>,
    pub unmanaged_users: UnmanagedUsers,
    /// `corporate_domains` in effect (lower-case, without `@`); `None`: not checked.
    pub corporate_domains: Option<Vec<String>>,
    /// `max_owners` in effect; `None`: not checked.
    pub max_owners: Option<u32>,
    /// `expiry_notice` in effect (default 3 days).
    pub expiry_notice: chrono::Duration,
}

impl Desired {
    /// Every mirror group name a mapping of this workspace names (resolved or not).
    pub fn mirror_names(&self) -> BTreeSet<&str> {
        self.groups
            .iter()
            .filter_map(|g| g.mirror.as_deref())
            .collect()
    }
}

/// Resolves one workspace's mapping. `idp_groups` is what the IdP read for each mapped
/// reference; `defaults` is `[policy]` from scimwatch.toml.
pub fn resolve(
    workspace: &str,
    workspace_id: &str,
    mapping: &WorkspaceMapping,
    catalog: &Catalog,
    idp_groups: &[(GroupRef, GroupRead)],
    defaults: &PolicyConfig,
) -> Desired {
    let mut unresolved = Vec::new();
    let cat = CatalogIndex::new(catalog);

    let mut groups = Vec::new();
    for rule in &mapping.groups {
        let read = idp_groups
            .iter()
            .find(|(r, _)| *r == rule.idp_group)
            .map(|(_, g)| g);
        let idp = match read {
            Some(GroupRead::Found(g)) => Some(g.clone()),
            Some(GroupRead::Unresolved { reason }) => {
                unresolved.push(Unresolved {
                    origin: rule.origin.clone(),
                    name: rule.idp_group.text().to_string(),
                    what: "IdP group",
                    reason: reason.clone(),
                });
                None
            }
            None => {
                unresolved.push(Unresolved {
                    origin: rule.origin.clone(),
                    name: rule.idp_group.text().to_string(),
                    what: "IdP group",
                    reason: "the IdP was not asked for this group".into(),
                });
                None
            }
        };
        let mirror = rule
            .segment_group
            .clone()
            .or_else(|| match (&rule.idp_group, &idp) {
                (GroupRef::Name(n), _) => Some(n.clone()),
                (GroupRef::Id(_), Some(g)) => Some(g.name.clone()),
                (GroupRef::Id(_), None) => None,
            });
        let mut grants = Some(Vec::new());
        for g in &rule.grants {
            match resolve_grant(g, workspace_id, &cat) {
                Ok(grant) => {
                    if let Some(gs) = grants.as_mut() {
                        gs.push(grant);
                    }
                }
                Err(u) => {
                    unresolved.extend(u);
                    grants = None;
                }
            }
        }
        groups.push(DesiredGroup {
            origin: rule.origin.clone(),
            idp_ref: rule.idp_group.clone(),
            idp,
            mirror,
            grants,
            justification: rule.justification.clone(),
            ticket: rule.ticket.clone(),
        });
    }

    let mut exceptions = Vec::new();
    for rule in &mapping.exceptions {
        let mut grants = Vec::new();
        for g in &rule.grants {
            match resolve_grant(g, workspace_id, &cat) {
                Ok(grant) => grants.push(grant),
                Err(u) => unresolved.extend(u),
            }
        }
        let mirror_groups = rule
            .groups
            .iter()
            .map(|name| {
                groups
                    .iter()
                    .find(|d| d.idp_name() == *name || d.idp_ref.text() == name)
                    .and_then(|d| d.mirror.clone())
                    .unwrap_or_else(|| name.clone())
            })
            .collect();
        exceptions.push(DesiredException {
            rule: rule.clone(),
            grants,
            mirror_groups,
        });
    }

    let policy = mapping.policy.as_ref().map(|(p, _)| p);
    let allow = policy
        .and_then(|p| p.allow.clone())
        .or_else(|| defaults.allow.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let unmanaged_users = policy
        .and_then(|p| p.unmanaged_users)
        .or(defaults.unmanaged_users)
        .unwrap_or(UnmanagedUsers::Alert);
    // A mapping file's [policy] overrides scimwatch.toml's, key by key.
    let corporate_domains = policy
        .and_then(|p| p.corporate_domains.clone())
        .or_else(|| defaults.corporate_domains.clone());
    let max_owners = policy.and_then(|p| p.max_owners).or(defaults.max_owners);
    let expiry_notice = policy
        .and_then(|p| p.expiry_notice)
        .or(defaults.expiry_notice)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .unwrap_or(DEFAULT_EXPIRY_NOTICE);

    Desired {
        workspace: workspace.to_string(),
        workspace_id: workspace_id.to_string(),
        groups,
        exceptions,
        unresolved,
        allow,
        unmanaged_users,
        corporate_domains,
        max_owners,
        expiry_notice,
    }
}

/// `expiry_notice` when neither scimwatch.toml nor the mapping sets it (config.md).
pub const DEFAULT_EXPIRY_NOTICE: chrono::Duration = chrono::Duration::days(3);

/// Whether `email` is in one of `domains` (exactly, or a subdomain of one).
pub fn in_domains(email: &Email, domains: &[String]) -> bool {
    let d = email.domain().to_ascii_lowercase();
    domains.iter().any(|c| {
        let c = c.trim().trim_start_matches('@').to_ascii_lowercase();
        !c.is_empty() && (d == c || d.ends_with(&format!(".{c}")))
    })
}

/// Looks names up in a catalog: ids first, then exact names/slugs, then case-insensitive.
struct CatalogIndex<'a> {
    catalog: &'a Catalog,
    labels: BTreeSet<Label>,
}

impl<'a> CatalogIndex<'a> {
    fn new(catalog: &'a Catalog) -> Self {
        let mut labels: BTreeSet<Label> = catalog.labels.iter().cloned().collect();
        for s in catalog.sources.iter().chain(&catalog.spaces) {
            labels.extend(s.labels.iter().cloned());
        }
        CatalogIndex { catalog, labels }
    }

    fn role(&self, r: &RoleRef) -> Result<&'a Role, String> {
        let roles = &self.catalog.roles;
        let found = match r {
            RoleRef::Id(id) => roles.iter().find(|x| x.id == *id),
            RoleRef::Name(n) => roles
                .iter()
                .find(|x| x.name == *n)
                .or_else(|| roles.iter().find(|x| x.name.eq_ignore_ascii_case(n))),
        };
        found.ok_or_else(|| {
            let names: Vec<&str> = roles.iter().map(|x| x.name.as_str()).collect();
            not_found("role", r.text(), &names)
        })
    }

    fn item(
        &self,
        what: &'static str,
        items: &'a [CatalogItem],
        name: &str,
    ) -> Result<&'a CatalogItem, String> {
        items
            .iter()
            .find(|i| i.id == name)
            .or_else(|| items.iter().find(|i| i.slug.as_deref() == Some(name)))
            .or_else(|| items.iter().find(|i| i.name.as_deref() == Some(name)))
            .or_else(|| {
                items.iter().find(|i| {
                    i.slug
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(name))
                        || i.name
                            .as_deref()
                            .is_some_and(|s| s.eq_ignore_ascii_case(name))
                })
            })
            .ok_or_else(|| {
                let names: Vec<&str> = items
                    .iter()
                    .flat_map(|i| i.slug.as_deref().into_iter().chain(i.name.as_deref()))
                    .collect();
                not_found(what, name, &names)
            })
    }
}

fn not_found(what: &str, name: &str, known: &[&str]) -> String {
    match near_name(name, known) {
        Some(near) => {
            format!("no {what} named {name:?} in this workspace (did you mean {near:?}?)")
        }
        None => format!("no {what} named {name:?} in this workspace"),
    }
}

/// The closest known name within a small edit distance, or a case-insensitive match.
pub fn near_name<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (levenshtein(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// One grant rule → one policy, or the names that did not resolve.
fn resolve_grant(
    rule: &GrantRule,
    workspace_id: &str,
    cat: &CatalogIndex<'_>,
) -> Result<Grant, Vec<Unresolved>> {
    let mut problems = Vec::new();
    let unresolved = |what: &'static str, name: &str, reason: String| Unresolved {
        origin: rule.origin.clone(),
        name: name.to_string(),
        what,
        reason,
    };
    let role = match cat.role(&rule.role) {
        Ok(r) => Some(r),
        Err(reason) => {
            problems.push(unresolved("role", rule.role.text(), reason));
            None
        }
    };
    let mut resources = BTreeSet::new();
    let mut items =
        |what: &'static str, kind: ResourceType, list: &[CatalogItem], names: &[String]| {
            for n in names {
                match cat.item(what, list, n) {
                    Ok(item) => {
                        resources.insert(Resource {
                            kind,
                            id: item.id.clone(),
                            labels: BTreeSet::new(),
                        });
                    }
                    Err(reason) => problems.push(unresolved(what, n, reason)),
                }
            }
        };
    match &rule.scope {
        GrantScope::Workspace => {
            resources.insert(Resource::workspace(workspace_id));
        }
        GrantScope::Sources(names) => {
            items("source", ResourceType::Source, &cat.catalog.sources, names)
        }
        GrantScope::Warehouses(names) => items(
            "warehouse",
            ResourceType::Warehouse,
            &cat.catalog.warehouses,
            names,
        ),
        GrantScope::Functions(names) => items(
            "function",
            ResourceType::Function,
            &cat.catalog.functions,
            names,
        ),
        GrantScope::Spaces(names) => {
            items("space", ResourceType::Space, &cat.catalog.spaces, names)
        }
        GrantScope::Labels(map) => {
            let mut labels = BTreeSet::new();
            for (k, v) in map {
                let label = Label {
                    key: k.clone(),
                    value: v.clone(),
                };
                if cat.labels.contains(&label) {
                    labels.insert(label);
                } else {
                    let known: Vec<String> = cat
                        .labels
                        .iter()
                        .map(|l| format!("{}:{}", l.key, l.value))
                        .collect();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    let text = format!("{k}:{v}");
                    problems.push(unresolved(
                        "label",
                        &text,
                        not_found("label", &text, &known),
                    ));
                }
            }
            resources.insert(Resource {
                kind: ResourceType::Workspace,
                id: workspace_id.to_string(),
                labels,
            });
        }
    }
    match role {
        Some(role) if problems.is_empty() => Ok(Grant {
            role_id: role.id.clone(),
            role_name: role.name.clone(),
            resources,
        }),
        _ => Err(problems),
    }
}

/// One role on one resource: the unit grants are compared in.
pub type Atom = (String, Resource);

/// Splits policies into atoms, dropping neutral ones (Minimal Workspace Access).
pub fn atoms<'g>(grants: impl IntoIterator<Item = &'g Grant>) -> BTreeSet<Atom> {
    grants
        .into_iter()
        .filter(|g| !g.is_neutral())
        .flat_map(|g| {
            g.resources
                .iter()
                .map(move |r| (g.role_id.clone(), r.clone()))
        })
        .collect()
}

/// Groups atoms back into one policy per role, naming roles from `names` (role id →
/// name).
pub fn regroup(atoms: &BTreeSet<Atom>, names: &BTreeMap<String, String>) -> Vec<Grant> {
    let mut by_role: BTreeMap<&str, BTreeSet<Resource>> = BTreeMap::new();
    for (role, res) in atoms {
        by_role.entry(role).or_default().insert(res.clone());
    }
    by_role
        .into_iter()
        .map(|(role, resources)| Grant {
            role_id: role.to_string(),
            role_name: names.get(role).cloned().unwrap_or_else(|| role.to_string()),
            resources,
        })
        .collect()
}

/// Whether an exception grant covers an atom: the same role, and a resource that is the
/// exception's or narrower (a WORKSPACE resource without labels covers everything; one
/// with labels covers WORKSPACE resources with at least those labels and SOURCE / SPACE
/// items carrying them).
pub fn covers(exception: &Grant, atom: &Atom, catalog: &Catalog) -> bool {
    if exception.role_id != atom.0 {
        return false;
    }
    let res = &atom.1;
    exception.resources.iter().any(|e| {
        if e == res {
            return true;
        }
        if e.kind != ResourceType::Workspace {
            return false;
        }
        if e.labels.is_empty() {
            return true;
        }
        match res.kind {
            ResourceType::Workspace => e.labels.is_subset(&res.labels),
            ResourceType::Source | ResourceType::Space => catalog
                .sources
                .iter()
                .chain(&catalog.spaces)
                .find(|i| i.id == res.id)
                .is_some_and(|i| e.labels.is_subset(&i.labels)),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names() {
        assert_eq!(
            near_name("Sorce Admin", &["Source Admin", "Workspace Owner"]),
            Some("Source Admin")
        );
        assert_eq!(
            near_name("web-prd", &["web-prod", "ios-prod"]),
            Some("web-prod")
        );
        assert_eq!(near_name("totally different", &["web-prod"]), None);
    }
}
