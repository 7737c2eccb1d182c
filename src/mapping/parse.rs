//! mappings/*.toml → [`MappingSet`](super::MappingSet), every problem at once.
//!
//! Why one file (~650 lines): the per-file rules and the cross-file checks share the
//! strict reader's state and the origins they report.
//!
//! Contract: the same strictness as `config` (unknown keys are errors with "did you mean",
//! every problem names the file, line and key and says how to fix it). Every rule carries
//! the [`Origin`] of its header or inline table. Rules spanning files (one IdP group or one
//! mirror group mapped twice for a workspace, `[policy]` in two files of a workspace) name
//! both places. Never: skip a file or a rule silently, or resolve names (that is
//! `resolve.rs`, against the live catalogs).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use toml::de::DeValue;

use super::{
    ExceptionRule, GrantRule, GrantScope, GroupRule, MappingSet, Origin, RoleRef, WorkspaceMapping,
};
use crate::config::strict::{
    did_you_mean, read_capped, read_policy, shown, Item, PolicyPlace, ReadError, Source, Table,
    MAX_FILE_BYTES,
};
use crate::config::{PolicyConfig, Problem, Problems};
use crate::model::{Email, GroupRef, WORKSPACE_OWNER, WORKSPACE_OWNER_ROLE_ID};

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Problems),
}

/// An exception may not run longer than this from `now`.
const MAX_EXCEPTION_DAYS: i64 = 366;

/// [`load_dir`] on the folder `mappings.dir` names; a missing folder is a problem at
/// that key's line in the config file.
pub fn load_configured(
    config: &crate::config::Config,
    known_workspaces: &[String],
    now: DateTime<Utc>,
) -> Result<MappingSet, MappingError> {
    let dir = &config.mappings.dir;
    if !dir.is_dir() {
        let (file, line) = &config.mappings.origin;
        let what = if dir.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(MappingError::Invalid(Problems(vec![Problem {
            file: file.clone(),
            line: Some(*line),
            key: "mappings.dir".into(),
            message: format!(
                "the mappings folder `{}` {what}; create it with the mapping files, or point `mappings.dir` at it",
                crate::paths::shown(dir)
            ),
            hint: None,
        }])));
    }
    load_dir(dir, &config.base_dir, known_workspaces, now)
}

/// Reads every `*.toml` below `dir` (recursively, sorted by path). File names in origins
/// and problems are shown relative to `base_dir` (the config file's folder).
pub fn load_dir(
    dir: &Path,
    base_dir: &Path,
    known_workspaces: &[String],
    now: DateTime<Utc>,
) -> Result<MappingSet, MappingError> {
    let mut paths = Vec::new();
    collect(dir, &mut paths)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let shown = path
            .strip_prefix(base_dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = match read_capped(&path, MAX_FILE_BYTES) {
            Ok(text) => text,
            Err(ReadError::Io(source)) => {
                return Err(MappingError::Io {
                    path: path.clone(),
                    source,
                })
            }
            Err(other) => {
                let line = match other {
                    ReadError::NotUtf8 { line, .. } => Some(line),
                    _ => None,
                };
                let src = Source::new(shown, "");
                return Err(MappingError::Invalid(Problems(vec![src.problem(
                    line,
                    "",
                    format!("cannot be read: {other}"),
                    None,
                )])));
            }
        };
        files.push((shown, text));
    }
    // Origins (and so findings' `mapping.file`) stay relative to the config file's folder;
    // a problem names the file as the person at the terminal finds it.
    // Other places a message quotes ("already … at mappings/a.toml:3") are rewritten the
    // same way, longest name first so that no name is rewritten inside another.
    let mut names: Vec<(String, String)> = files
        .iter()
        .map(|(rel, _)| (rel.clone(), crate::paths::shown(&base_dir.join(rel))))
        .filter(|(rel, shown)| rel != shown)
        .collect();
    names.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.len()));
    parse_files(&files, known_workspaces, now).map_err(|e| match e {
        MappingError::Invalid(Problems(mut problems)) => {
            for p in &mut problems {
                for (rel, shown) in &names {
                    let quoted = format!(" {rel}:");
                    if p.message.contains(&quoted) {
                        p.message = p.message.replace(&quoted, &format!(" {shown}:"));
                    }
                }
                if !p.file.is_empty() {
                    p.file = crate::paths::shown(&base_dir.join(&p.file));
                }
            }
            MappingError::Invalid(Problems(problems))
        }
        other => other,
    })
}

fn collect(dir: &Path, paths: &mut Vec<PathBuf>) -> Result<(), MappingError> {
    let io = |source| MappingError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_type().map_err(io)?.is_dir() {
            collect(&path, paths)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    Ok(())
}

/// Parses mapping files given as `(display name, text)`, in the order given.
pub fn parse_files(
    files: &[(String, String)],
    known_workspaces: &[String],
    now: DateTime<Utc>,
) -> Result<MappingSet, MappingError> {
    let mut out: Vec<Problem> = Vec::new();
    let mut set = MappingSet::default();
    for (name, text) in files {
        let mut problems = Vec::new();
        if let Some(file) = parse_file(name, text, known_workspaces, now, &mut problems) {
            if problems.is_empty() {
                merge(&mut set, file, &mut problems);
            }
        }
        problems.sort_by_key(|p| p.line.unwrap_or(0));
        out.extend(problems);
    }
    if out.is_empty() {
        check_exception_groups(&set, &mut out);
    }
    if out.is_empty() {
        Ok(set)
    } else {
        Err(MappingError::Invalid(Problems(out)))
    }
}

/// Every `groups` entry of an exception names a group mapped for its workspace (by its
/// `idp_group`, `idp_group_id` or `segment_group`). A workspace with groups mapped by id
/// alone (whose names only the IdP knows) cannot be checked here; `resolve` then keeps
/// the name as written.
fn check_exception_groups(set: &MappingSet, out: &mut Vec<Problem>) {
    for (workspace, ws) in &set.workspaces {
        let by_id_only = ws
            .groups
            .iter()
            .any(|g| matches!(g.idp_group, GroupRef::Id(_)) && g.segment_group.is_none());
        if by_id_only {
            continue;
        }
        let mut names: Vec<&str> = Vec::new();
        for g in &ws.groups {
            names.push(g.idp_group.text());
            if let Some(s) = &g.segment_group {
                names.push(s.as_str());
            }
        }
        for e in &ws.exceptions {
            for name in &e.groups {
                if names.contains(&name.as_str()) {
                    continue;
                }
                out.push(Problem {
                    file: e.origin.file.clone(),
                    line: Some(e.origin.line),
                    key: "exception.groups".into(),
                    message: format!(
                        "{} is not a group mapped for workspace {}; name the `idp_group` of a [[group]] of this workspace",
                        shown(name),
                        shown(workspace)
                    ),
                    hint: did_you_mean(name, names.iter().copied()),
                });
            }
        }
    }
}

/// One file, parsed.
struct FileRules {
    file: String,
    workspace: String,
    groups: Vec<GroupRule>,
    exceptions: Vec<ExceptionRule>,
    policy: Option<(PolicyConfig, Origin)>,
}

fn parse_file(
    name: &str,
    text: &str,
    known_workspaces: &[String],
    now: DateTime<Utc>,
    out: &mut Vec<Problem>,
) -> Option<FileRules> {
    let src = Source::new(name, text);
    let doc = src.parse(text, out)?;
    let mut root = Table::root(&src, &doc);

    let workspace = root.str("workspace", out).and_then(|w| {
        if known_workspaces.contains(&w) {
            Some(w)
        } else {
            let mut p = root.key_problem(
                "workspace",
                format!(
                    "{} is not a [[workspace]] in scimwatch.toml; use one of: {}",
                    shown(&w),
                    known_workspaces.join(", ")
                ),
            );
            p.hint = did_you_mean(&w, known_workspaces.iter().map(String::as_str));
            out.push(p);
            None
        }
    });

    let mut groups = Vec::new();
    for t in root.array_of_tables("group", out) {
        if let Some(g) = read_group(t, out) {
            groups.push(g);
        }
    }
    let mut exceptions = Vec::new();
    for t in root.array_of_tables("exception", out) {
        if let Some(e) = read_exception(t, now, out) {
            exceptions.push(e);
        }
    }
    let policy = root.opt_sub_table("policy", out).map(|mut t| {
        let p = read_policy(&mut t, PolicyPlace::Mapping, out);
        let origin = Origin {
            file: name.to_string(),
            line: t.line(),
        };
        t.finish(out);
        (p, origin)
    });
    root.finish(out);
    Some(FileRules {
        file: name.to_string(),
        workspace: workspace?,
        groups,
        exceptions,
        policy,
    })
}

fn origin(src: &Source, line: u32) -> Origin {
    Origin {
        file: src.file().to_string(),
        line,
    }
}

fn non_empty(t: &mut Table<'_, '_>, key: &'static str, out: &mut Vec<Problem>) -> Option<String> {
    let v = t.opt_str(key, out)?;
    if v.trim().is_empty() {
        out.push(t.key_problem(key, "is empty; remove it or give it a value"));
        None
    } else {
        Some(v)
    }
}

fn read_group(mut t: Table<'_, '_>, out: &mut Vec<Problem>) -> Option<GroupRule> {
    let before = out.len();
    let by_name = non_empty(&mut t, "idp_group", out);
    let by_id = non_empty(&mut t, "idp_group_id", out);
    let idp_group = match (by_name, by_id) {
        (Some(_), Some(_)) => {
            out.push(t.key_problem(
                "idp_group_id",
                "both \"idp_group\" and \"idp_group_id\" are set; keep one",
            ));
            None
        }
        (Some(n), None) => Some(GroupRef::Name(n)),
        (None, Some(i)) => Some(GroupRef::Id(i)),
        (None, None) => {
            if !t.has("idp_group") && !t.has("idp_group_id") {
                out.push(t.problem(
                    "names no IdP group; add `idp_group = \"<group name>\"` (or `idp_group_id`)",
                    None,
                ));
            }
            None
        }
    };
    let segment_group = non_empty(&mut t, "segment_group", out);
    let justification = non_empty(&mut t, "justification", out);
    let ticket = non_empty(&mut t, "ticket", out);
    let mut grants = Vec::new();
    for g in t.array_of_tables("grant", out) {
        if let Some(rule) = read_grant(g, out) {
            grants.push(rule);
        }
    }
    if justification.is_none() && grants.iter().any(|g| is_owner(&g.role)) {
        out.push(t.problem(
            "grants Workspace Owner but has no `justification`; add `justification = \"why this group owns the workspace\"`",
            None,
        ));
    }
    let origin = origin(t.src(), t.line());
    t.finish(out);
    if out.len() > before {
        return None;
    }
    Some(GroupRule {
        idp_group: idp_group?,
        segment_group,
        justification,
        ticket,
        grants,
        origin,
    })
}

fn is_owner(role: &RoleRef) -> bool {
    match role {
        RoleRef::Name(n) => n.trim().eq_ignore_ascii_case(WORKSPACE_OWNER),
        RoleRef::Id(i) => i.trim() == WORKSPACE_OWNER_ROLE_ID,
    }
}

const RESOURCE_KEYS: [&str; 5] = ["sources", "labels", "warehouses", "functions", "spaces"];

/// A `[[group.grant]]` or an inline grant table of an exception.
fn read_grant(mut t: Table<'_, '_>, out: &mut Vec<Problem>) -> Option<GrantRule> {
    let before = out.len();
    let role = non_empty(&mut t, "role", out);
    let role_id = non_empty(&mut t, "role_id", out);
    let role = match (role, role_id) {
        (Some(_), Some(_)) => {
            out.push(t.problem(
                "both \"role\" and \"role_id\" are set; keep one (role_id survives renames)",
                None,
            ));
            None
        }
        (Some(n), None) => Some(RoleRef::Name(n)),
        (None, Some(i)) => Some(RoleRef::Id(i)),
        (None, None) => {
            if !t.has("role") && !t.has("role_id") {
                out.push(t.problem(
                    "names no role; add `role = \"<role name>\"` (or `role_id`)",
                    None,
                ));
            }
            None
        }
    };
    let present: Vec<&'static str> = RESOURCE_KEYS.into_iter().filter(|k| t.has(k)).collect();
    let mut scope = Some(GrantScope::Workspace);
    if present.len() > 1 {
        let names: Vec<String> = present.iter().map(|k| format!("\"{k}\"")).collect();
        out.push(t.problem(
            format!(
                "{} are both set; a grant covers one resource kind, so split it into one [[group.grant]] per kind",
                names.join(" and ")
            ),
            None,
        ));
        scope = None;
    } else if let Some(key) = present.first().copied() {
        scope = read_scope(&mut t, key, out);
    }
    let origin = origin(t.src(), t.line());
    t.finish(out);
    if out.len() > before {
        return None;
    }
    Some(GrantRule {
        role: role?,
        scope: scope?,
        origin,
    })
}

fn read_scope(
    t: &mut Table<'_, '_>,
    key: &'static str,
    out: &mut Vec<Problem>,
) -> Option<GrantScope> {
    if key == "labels" {
        let map = t.value(key, out)?.string_map(out)?;
        if map.is_empty() {
            out.push(t.key_problem(key, "is empty; name at least one label like { environment = \"prod\" }, or remove it for the whole workspace"));
            return None;
        }
        return Some(GrantScope::Labels(map));
    }
    let list = t.opt_str_list(key, out)?;
    if list.is_empty() {
        out.push(t.key_problem(
            key,
            format!("is empty; list at least one, or remove `{key}` to grant the whole workspace"),
        ));
        return None;
    }
    Some(match key {
        "sources" => GrantScope::Sources(list),
        "warehouses" => GrantScope::Warehouses(list),
        "functions" => GrantScope::Functions(list),
        _ => GrantScope::Spaces(list),
    })
}

fn read_exception(
    mut t: Table<'_, '_>,
    now: DateTime<Utc>,
    out: &mut Vec<Problem>,
) -> Option<ExceptionRule> {
    let before = out.len();
    let user = t
        .str("user", out)
        .and_then(|u| single_email(&t, "user", &u, out))
        .map(|u| Email::new(&u));
    let mut grants = Vec::new();
    let mut has_grants = false;
    if let Some(item) = t.value("grants", out) {
        for g in item.array(out).unwrap_or_default() {
            has_grants = true;
            if let Some(table) = g.table(out) {
                if let Some(rule) = read_grant(table, out) {
                    grants.push(rule);
                }
            }
        }
    }
    let groups = t.opt_str_list("groups", out).unwrap_or_default();
    if !has_grants && groups.is_empty() && out.len() == before {
        out.push(t.problem(
            "allows nothing; add `grants = [{ role = \"...\" }]` and/or `groups = [\"<IdP group>\"]`",
            None,
        ));
    }
    let expires = match t.value("expires", out) {
        None => {
            out.push(t.problem(
                "has no `expires`; add `expires = \"2026-12-10T00:00:00Z\"` (exceptions are temporary)",
                None,
            ));
            None
        }
        Some(item) => read_expires(&item, now, out),
    };
    let mut required = |key: &'static str, what: &str, out: &mut Vec<Problem>| {
        if t.has(key) {
            non_empty(&mut t, key, out)
        } else {
            out.push(t.problem(format!("has no `{key}`; add `{key} = {what}`"), None));
            None
        }
    };
    let ticket = required("ticket", "\"CHG-1234\"", out);
    let approved_by = required("approved_by", "\"<who approved it>\"", out);
    let reason = required("reason", "\"<why this person needs it>\"", out);
    let approved_by = approved_by.and_then(|a| single_email(&t, "approved_by", &a, out));
    let origin = origin(t.src(), t.line());
    t.finish(out);
    if out.len() > before {
        return None;
    }
    Some(ExceptionRule {
        user: user?,
        grants,
        groups,
        expires: expires?,
        ticket: ticket?,
        approved_by: approved_by?,
        reason: reason?,
        origin,
    })
}

/// `value` is one plain email address: `local@domain.tld`, one `@`, no spaces, quotes,
/// brackets or control characters, nothing around it (not trimmed: `" jane@acme.test "`
/// is refused, since a value that needs trimming was not meant as written).
pub fn is_single_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '\'' | '%'))
    };
    plain(local)
        && plain(domain)
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !local.starts_with('.')
        && !local.ends_with('.')
}

fn single_email(
    t: &Table<'_, '_>,
    key: &str,
    value: &str,
    out: &mut Vec<Problem>,
) -> Option<String> {
    if is_single_email(value) {
        Some(value.to_string())
    } else {
        out.push(t.key_problem(
            key,
            format!(
                "{} is not one email address; write a single address like \"jane@acme.com\" (no spaces, one @)",
                shown(value)
            ),
        ));
        None
    }
}

/// RFC 3339 text or a TOML offset datetime, at most a year ahead of `now`.
fn read_expires(
    item: &Item<'_, '_>,
    now: DateTime<Utc>,
    out: &mut Vec<Problem>,
) -> Option<DateTime<Utc>> {
    let text = match item.raw() {
        DeValue::String(s) => s.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        other => {
            out.push(item.problem(
                format!(
                    "expected an RFC 3339 time such as \"2026-12-10T00:00:00Z\", found {}",
                    crate::config::strict::type_name(other)
                ),
                None,
            ));
            return None;
        }
    };
    let at = match DateTime::parse_from_rfc3339(&text) {
        Ok(d) => d.with_timezone(&Utc),
        Err(_) => {
            out.push(item.problem(
                format!("{} is not an RFC 3339 time with a zone; write it like \"2026-12-10T00:00:00Z\"", shown(&text)),
                None,
            ));
            return None;
        }
    };
    if at > now + ChronoDuration::days(MAX_EXCEPTION_DAYS) {
        out.push(item.problem(
            format!(
                "{text} is more than {MAX_EXCEPTION_DAYS} days ahead; no permanent exceptions: set an expiry within a year and renew it when needed"
            ),
            None,
        ));
        return None;
    }
    Some(at)
}

/// Adds one file's rules to its workspace, checking the rules that span files.
fn merge(set: &mut MappingSet, file: FileRules, out: &mut Vec<Problem>) {
    let ws: &mut WorkspaceMapping = set.workspaces.entry(file.workspace.clone()).or_default();
    let problem = |origin: &Origin, key: String, message: String| Problem {
        file: origin.file.clone(),
        line: Some(origin.line),
        key,
        message,
        hint: None,
    };
    let mut ok = true;
    // Indices of this file's groups, for keys like group[2].
    for (n, g) in file.groups.iter().enumerate() {
        let key = format!("group[{}]", n + 1);
        let earlier: Vec<&GroupRule> = ws.groups.iter().chain(file.groups[..n].iter()).collect();
        if let Some(first) = earlier.iter().find(|e| e.idp_group == g.idp_group) {
            out.push(problem(
                &g.origin,
                key,
                format!(
                    "the IdP group {:?} is already mapped for workspace {:?} at {}; map each IdP group once per workspace (merge the grants into one [[group]])",
                    g.idp_group.text(),
                    file.workspace,
                    first.origin
                ),
            ));
            ok = false;
            continue;
        }
        if let Some(name) = mirror(g) {
            if let Some(first) = earlier.iter().find(|e| mirror(e) == Some(name)) {
                out.push(problem(
                    &g.origin,
                    key,
                    format!(
                        "the mirror group {name:?} in workspace {:?} is also mapped at {}; give each mapping its own `segment_group`",
                        file.workspace, first.origin
                    ),
                ));
                ok = false;
            }
        }
    }
    if let (Some((_, here)), Some((_, first))) = (&file.policy, &ws.policy) {
        out.push(problem(
            here,
            "policy".to_string(),
            format!(
                "workspace {:?} already has a [policy] at {first}; keep one [policy] per workspace",
                file.workspace
            ),
        ));
        ok = false;
    }
    if !ok {
        return;
    }
    ws.groups.extend(file.groups);
    ws.exceptions.extend(file.exceptions);
    if file.policy.is_some() {
        ws.policy = file.policy;
    }
    ws.files.push(file.file);
}

/// The Segment group a rule mirrors into, when known before resolution.
fn mirror(g: &GroupRule) -> Option<&str> {
    match (&g.segment_group, &g.idp_group) {
        (Some(s), _) => Some(s.as_str()),
        (None, GroupRef::Name(n)) => Some(n.as_str()),
        (None, GroupRef::Id(_)) => None,
    }
}
