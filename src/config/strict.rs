//! A span-keeping reader over TOML (`toml::de::DeTable`) shared by `config` and `mapping`:
//! unknown keys with "did you mean", type errors, every problem collected, each with the
//! file, the 1-based line and the dotted key.
//!
//! Contract: a reader never stops at the first problem; it pushes a [`Problem`] and goes
//! on, so a file's problems are all reported at once. Every getter records the key it
//! asked for; [`Table::finish`] reports every other key as unknown, with a "did you mean"
//! over the keys that table accepts. Messages never quote a value that may be a secret:
//! type errors name types, environment overrides never show their value.
//!
//! Why one file (~950 lines): `Item` and `Table` are one reader; split, the rule that every
//! getter records its key and the rule that `finish` reports the rest would sit apart. The
//! input limits it applies are in `limits.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

// The input limits every reader applies, kept in their own file (`limits.rs`); re-exported
// here because every reader of a file uses them with the rest of this module.
pub use super::limits::{
    cut, read_capped, shown, DurationBounds, ReadError, MAX_FILE_BYTES, MAX_SECRET_FILE_BYTES,
    MAX_SHOWN_CHARS, TEN_YEARS,
};

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user should see it (relative to the config file's folder when
    /// possible).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// Dotted key path, e.g. `group[2].grant[1].role` (empty when the whole file is wrong).
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// A near name, for "did you mean".
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file, line)?,
            None => write!(f, "{}", self.file)?,
        }
        if !self.key.is_empty() {
            // A key is text from the file too: a 20 MB table name is not echoed.
            write!(f, ": {}", cut(&self.key))?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (did you mean `{h}`?)")?;
        }
        Ok(())
    }
}

/// Every problem found, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

// ---------------------------------------------------------------------------------------
// The reader

/// One file's text as lines: converts byte offsets from the TOML parser into 1-based
/// lines, and names the file in every problem.
#[derive(Debug)]
pub struct Source {
    file: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(file: impl Into<String>, text: &str) -> Source {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            file: file.into(),
            line_starts,
        }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> u32 {
        let n = self.line_starts.partition_point(|&start| start <= offset);
        u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }

    /// A problem in this file.
    pub fn problem(
        &self,
        line: Option<u32>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Problem {
        Problem {
            file: self.file.clone(),
            line,
            key: key.into(),
            message: message.into(),
            hint,
        }
    }

    /// Parses `text` (the text this source was made from). A syntax error becomes one
    /// problem with its line.
    pub fn parse<'i>(&self, text: &'i str, out: &mut Vec<Problem>) -> Option<DeTable<'i>> {
        match DeTable::parse(text) {
            Ok(table) => Some(table.into_inner()),
            Err(e) => {
                let line = e.span().map(|s| self.line(s.start));
                let message = format!(
                    "this is not valid TOML: {}; fix the syntax",
                    e.message().trim_end_matches('.')
                );
                out.push(self.problem(line, "", message, None));
                None
            }
        }
    }
}

/// `SCIMWATCH__SECTION__KEY=value`, aimed at one key of one top-level table.
#[derive(Clone)]
pub struct Override {
    /// The variable's name (named in problems; its value never is).
    pub var: String,
    /// The key inside the section, lower-cased.
    pub key: String,
    pub value: String,
}

impl fmt::Debug for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value may be a secret (an inline token): never shown.
        write!(f, "Override({} -> {})", self.var, self.key)
    }
}

/// "a string", "an integer", ...
pub fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Edit distance (insertions, deletions, substitutions), over chars.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate `name` was probably meant to be: a case-insensitive match, else the
/// nearest within an edit distance of 2 (ties: the first candidate). Names longer than
/// [`MAX_SUGGEST_CHARS`] resemble nothing (and would cost a quadratic walk).
pub fn did_you_mean<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    if name.len() > MAX_SUGGEST_CHARS {
        return None;
    }
    let candidates: Vec<&str> = candidates.into_iter().collect();
    if let Some(c) = candidates
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name) && **c != name)
    {
        return Some((*c).to_string());
    }
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in &candidates {
        if *c == name {
            continue;
        }
        let d = levenshtein(&lower, &c.to_lowercase());
        // A distance as long as the name itself is no resemblance ("a" vs "id").
        if d <= 2 && d < name.chars().count() && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Names longer than this get no "did you mean".
const MAX_SUGGEST_CHARS: usize = 128;

/// `group[2].grant[1]` → `group.grant`: the header an array element was written under.
fn header_name(path: &str) -> String {
    let mut name = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => name.push(c),
            _ => {}
        }
    }
    name
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A value with an owned path (what the getters hand out).
pub struct Item<'a, 'i> {
    src: &'a Source,
    v: &'a Spanned<DeValue<'i>>,
    path: String,
}

impl<'a, 'i> Item<'a, 'i> {
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn line(&self) -> u32 {
        self.src.line(self.v.span().start)
    }
    pub fn raw(&self) -> &'a DeValue<'i> {
        self.v.get_ref()
    }
    pub fn src(&self) -> &'a Source {
        self.src
    }

    fn wrong_type(&self, expected: &str, out: &mut Vec<Problem>) {
        out.push(self.src.problem(
            Some(self.line()),
            self.path.clone(),
            format!("expected {expected}, found {}", type_name(self.raw())),
            None,
        ));
    }

    /// A problem about this value.
    pub fn problem(&self, message: impl Into<String>, hint: Option<String>) -> Problem {
        self.src
            .problem(Some(self.line()), self.path.clone(), message, hint)
    }

    pub fn str(&self, out: &mut Vec<Problem>) -> Option<&'a str> {
        match self.raw() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type("a string", out);
                None
            }
        }
    }

    pub fn bool(&self, out: &mut Vec<Problem>) -> Option<bool> {
        match self.raw() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type("a boolean (true or false)", out);
                None
            }
        }
    }

    pub fn u32(&self, out: &mut Vec<Problem>) -> Option<u32> {
        match self.raw() {
            DeValue::Integer(i) => match u32::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    out.push(self.problem(
                        format!(
                            "{} is out of range; use a whole number from 0 to {}",
                            shown(i.as_str()),
                            u32::MAX
                        ),
                        None,
                    ));
                    None
                }
            },
            _ => {
                self.wrong_type("an integer", out);
                None
            }
        }
    }

    pub fn duration(&self, out: &mut Vec<Problem>) -> Option<Duration> {
        let text = match self.raw() {
            DeValue::String(s) => s.as_ref(),
            _ => {
                self.wrong_type("a duration string such as \"90s\" or \"5m\"", out);
                return None;
            }
        };
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(why) => {
                out.push(self.problem(
                    format!(
                        "{} is not a duration ({}); write it like \"90s\", \"5m\" or \"1h 30m\"",
                        shown(text),
                        cut(&why)
                    ),
                    None,
                ));
                None
            }
        }
    }

    /// The elements of an array, each with its 1-based index in the path.
    pub fn array(&self, out: &mut Vec<Problem>) -> Option<Vec<Item<'a, 'i>>> {
        match self.raw() {
            DeValue::Array(a) => Some(
                a.iter()
                    .enumerate()
                    .map(|(n, v)| Item {
                        src: self.src,
                        v,
                        path: format!("{}[{}]", self.path, n + 1),
                    })
                    .collect(),
            ),
            _ => {
                self.wrong_type("an array", out);
                None
            }
        }
    }

    /// An array of strings. Every element that is not a string is reported.
    pub fn str_list(&self, out: &mut Vec<Problem>) -> Option<Vec<String>> {
        let items = match self.raw() {
            DeValue::Array(_) => self.array(out)?,
            _ => {
                self.wrong_type("an array of strings", out);
                return None;
            }
        };
        let mut ok = true;
        let mut list = Vec::with_capacity(items.len());
        for item in &items {
            match item.str(out) {
                Some(s) => list.push(s.to_string()),
                None => ok = false,
            }
        }
        ok.then_some(list)
    }

    /// A table (a `[section]`, a `[[section]]` element or an inline table).
    pub fn table(&self, out: &mut Vec<Problem>) -> Option<Table<'a, 'i>> {
        match self.raw() {
            DeValue::Table(t) => Some(Table {
                src: self.src,
                table: t,
                line: self.line(),
                path: self.path.clone(),
                known: Vec::new(),
                overrides: Vec::new(),
            }),
            _ => {
                self.wrong_type("a table", out);
                None
            }
        }
    }

    /// A table of string values (`labels = { environment = "prod" }`).
    pub fn string_map(&self, out: &mut Vec<Problem>) -> Option<BTreeMap<String, String>> {
        let t = match self.raw() {
            DeValue::Table(t) => t,
            _ => {
                self.wrong_type("a table of strings such as { environment = \"prod\" }", out);
                return None;
            }
        };
        let mut ok = true;
        let mut map = BTreeMap::new();
        for (k, v) in t.iter() {
            let item = Item {
                src: self.src,
                v,
                path: join(&self.path, k.get_ref()),
            };
            match item.str(out) {
                Some(s) => {
                    map.insert(k.get_ref().to_string(), s.to_string());
                }
                None => ok = false,
            }
        }
        ok.then_some(map)
    }
}

/// humantime, with a clearer word for the empty string.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim().is_empty() {
        return Err("it is empty".to_string());
    }
    humantime::parse_duration(text.trim()).map_err(|e| e.to_string())
}

/// A table being read. Every getter records its key as known; [`Table::finish`] then
/// reports every key present but never asked for as unknown, with "did you mean".
pub struct Table<'a, 'i> {
    src: &'a Source,
    table: &'a DeTable<'i>,
    path: String,
    line: u32,
    known: Vec<&'static str>,
    overrides: Vec<Override>,
}

enum Found<'a, 'i> {
    Missing,
    Toml(Item<'a, 'i>),
    Env(usize),
}

impl<'a, 'i> Table<'a, 'i> {
    /// The document itself.
    pub fn root(src: &'a Source, table: &'a DeTable<'i>) -> Table<'a, 'i> {
        Table {
            src,
            table,
            path: String::new(),
            line: 1,
            known: Vec::new(),
            overrides: Vec::new(),
        }
    }

    /// A table that is not in the file (an absent `[section]`): every key reads as
    /// missing, but environment overrides still apply.
    pub fn absent(src: &'a Source, empty: &'a DeTable<'i>, path: &str) -> Table<'a, 'i> {
        Table {
            src,
            table: empty,
            path: path.to_string(),
            line: 1,
            known: Vec::new(),
            overrides: Vec::new(),
        }
    }

    /// Environment overrides for the scalar keys of this table.
    pub fn with_overrides(mut self, overrides: Vec<Override>) -> Table<'a, 'i> {
        self.overrides = overrides;
        self
    }

    pub fn src(&self) -> &'a Source {
        self.src
    }
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The line of the table's header (1 for the document).
    pub fn line(&self) -> u32 {
        self.line
    }
    /// The dotted path of `key` in this table.
    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A problem about this table as a whole (at its header).
    pub fn problem(&self, message: impl Into<String>, hint: Option<String>) -> Problem {
        self.src
            .problem(Some(self.line), self.path.clone(), message, hint)
    }

    /// A problem about `key` of this table: at the key's line when present, else at
    /// the table's header.
    pub fn key_problem(&self, key: &str, message: impl Into<String>) -> Problem {
        let line = self
            .table
            .get(key)
            .map(|v| self.src.line(v.span().start))
            .unwrap_or(self.line);
        self.src
            .problem(Some(line), self.key_path(key), message, None)
    }

    /// Accepts `key` without reading it.
    pub fn allow(&mut self, key: &'static str) {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
    }

    /// Whether `key` is set (in the file or by an override). Marks it known.
    pub fn has(&mut self, key: &'static str) -> bool {
        self.allow(key);
        self.table.contains_key(key) || self.overrides.iter().any(|o| o.key == key)
    }

    fn find(&mut self, key: &'static str) -> Found<'a, 'i> {
        self.allow(key);
        if let Some(n) = self.overrides.iter().position(|o| o.key == key) {
            return Found::Env(n);
        }
        match self.table.get(key) {
            Some(v) => Found::Toml(Item {
                src: self.src,
                v,
                path: self.key_path(key),
            }),
            None => Found::Missing,
        }
    }

    fn env_problem(&self, n: usize, message: String) -> Problem {
        let o = &self.overrides[n];
        self.src.problem(
            None,
            o.var.clone(),
            format!(
                "environment override of `{}`: {message}",
                self.key_path(&o.key)
            ),
            None,
        )
    }

    fn missing(&self, key: &str, what: &str, out: &mut Vec<Problem>) {
        let at = if self.path.is_empty() {
            "at the top of the file".to_string()
        } else if self.path.ends_with(']') {
            format!("to this [[{}]]", header_name(&self.path))
        } else {
            format!("to [{}]", self.path)
        };
        out.push(self.src.problem(
            Some(self.line),
            self.key_path(key),
            format!("is required; add `{key} = {what}` {at}"),
            None,
        ));
    }

    /// The raw value of `key`, if present in the file (overrides do not apply).
    pub fn value(&mut self, key: &'static str, out: &mut Vec<Problem>) -> Option<Item<'a, 'i>> {
        match self.find(key) {
            Found::Missing => None,
            Found::Toml(item) => Some(item),
            Found::Env(n) => {
                out.push(self.env_problem(
                    n,
                    "this key is not a single value and can only be set in the file".to_string(),
                ));
                self.table.get(key).map(|v| Item {
                    src: self.src,
                    v,
                    path: self.key_path(key),
                })
            }
        }
    }

    /// A required string.
    pub fn str(&mut self, key: &'static str, out: &mut Vec<Problem>) -> Option<String> {
        if !self.has(key) {
            self.missing(key, "\"...\"", out);
            return None;
        }
        self.opt_str(key, out)
    }

    pub fn opt_str(&mut self, key: &'static str, out: &mut Vec<Problem>) -> Option<String> {
        match self.find(key) {
            Found::Missing => None,
            Found::Toml(item) => item.str(out).map(str::to_string),
            Found::Env(n) => Some(self.overrides[n].value.clone()),
        }
    }

    pub fn opt_duration(&mut self, key: &'static str, out: &mut Vec<Problem>) -> Option<Duration> {
        match self.find(key) {
            Found::Missing => None,
            Found::Toml(item) => item.duration(out),
            Found::Env(n) => match parse_duration(&self.overrides[n].value) {
                Ok(d) => Some(d),
                Err(_) => {
                    out.push(self.env_problem(
                        n,
                        "the value is not a duration; write it like \"90s\", \"5m\" or \"1h 30m\""
                            .to_string(),
                    ));
                    None
                }
            },
        }
    }

    /// A duration within `bounds`; out of range is a problem naming the key and the
    /// allowed range, and `default` is used so reading goes on.
    pub fn bounded_duration(
        &mut self,
        key: &'static str,
        default: Duration,
        bounds: DurationBounds,
        out: &mut Vec<Problem>,
    ) -> Duration {
        match self.opt_duration(key, out) {
            None => default,
            Some(d) if bounds.allows(d) => d,
            Some(d) => {
                out.push(self.key_problem(
                    key,
                    format!(
                        "{} is out of range; write a duration {}",
                        shown(&humantime::format_duration(d).to_string()),
                        bounds.describe()
                    ),
                ));
                default
            }
        }
    }

    /// A duration with a default (itself a humantime string written by us).
    pub fn duration_or(
        &mut self,
        key: &'static str,
        default: Duration,
        out: &mut Vec<Problem>,
    ) -> Duration {
        self.opt_duration(key, out).unwrap_or(default)
    }

    pub fn opt_bool(&mut self, key: &'static str, out: &mut Vec<Problem>) -> Option<bool> {
        match self.find(key) {
            Found::Missing => None,
            Found::Toml(item) => item.bool(out),
            Found::Env(n) => match self.overrides[n].value.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => {
                    out.push(self.env_problem(
                        n,
                        "the value is not a boolean; write true or false".to_string(),
                    ));
                    None
                }
            },
        }
    }

    pub fn opt_u32(&mut self, key: &'static str, out: &mut Vec<Problem>) -> Option<u32> {
        match self.find(key) {
            Found::Missing => None,
            Found::Toml(item) => item.u32(out),
            Found::Env(n) => match self.overrides[n].value.trim().parse::<u32>() {
                Ok(v) => Some(v),
                Err(_) => {
                    out.push(
                        self.env_problem(
                            n,
                            "the value is not a whole number; write digits only, such as 10"
                                .to_string(),
                        ),
                    );
                    None
                }
            },
        }
    }

    pub fn opt_str_list(
        &mut self,
        key: &'static str,
        out: &mut Vec<Problem>,
    ) -> Option<Vec<String>> {
        self.value(key, out)?.str_list(out)
    }

    /// `[path.key]` (or an inline table).
    pub fn opt_sub_table(
        &mut self,
        key: &'static str,
        out: &mut Vec<Problem>,
    ) -> Option<Table<'a, 'i>> {
        let item = self.value(key, out)?;
        if !matches!(item.raw(), DeValue::Table(_)) {
            item.wrong_type(&format!("a table ([{}])", item.path), out);
            return None;
        }
        let path = item.path.clone();
        let line = item.line();
        match item.raw() {
            DeValue::Table(t) => Some(Table {
                src: self.src,
                table: t,
                path,
                line,
                known: Vec::new(),
                overrides: Vec::new(),
            }),
            _ => None,
        }
    }

    /// `[[path.key]]`: the elements, each a table with a 1-based index in its path.
    /// Absent means empty.
    pub fn array_of_tables(
        &mut self,
        key: &'static str,
        out: &mut Vec<Problem>,
    ) -> Vec<Table<'a, 'i>> {
        let Some(item) = self.value(key, out) else {
            return Vec::new();
        };
        let DeValue::Array(a) = item.raw() else {
            item.wrong_type(
                &format!(
                    "an array of tables (write [[{}]] for each entry)",
                    item.path
                ),
                out,
            );
            return Vec::new();
        };
        let mut tables = Vec::with_capacity(a.len());
        for (n, v) in a.iter().enumerate() {
            let elem = Item {
                src: self.src,
                v,
                path: format!("{}[{}]", item.path, n + 1),
            };
            if let DeValue::Table(t) = v.get_ref() {
                tables.push(Table {
                    src: self.src,
                    table: t,
                    line: elem.line(),
                    path: elem.path,
                    known: Vec::new(),
                    overrides: Vec::new(),
                });
            } else {
                elem.wrong_type("a table", out);
            }
        }
        tables
    }

    /// Reports every key present but never asked for, and every override naming a key
    /// this table does not have. Call after all getters.
    pub fn finish(self, out: &mut Vec<Problem>) {
        for (k, _) in self.table.iter() {
            let name: &str = k.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let hint = did_you_mean(name, self.known.iter().copied());
            let message = if self.known.is_empty() {
                "unknown key; this table takes no keys, remove it".to_string()
            } else {
                "unknown key; remove it or fix its spelling".to_string()
            };
            out.push(self.src.problem(
                Some(self.src.line(k.span().start)),
                join(&self.path, name),
                message,
                hint,
            ));
        }
        for o in &self.overrides {
            if self.known.contains(&o.key.as_str()) {
                continue;
            }
            let hint = did_you_mean(&o.key, self.known.iter().copied()).map(|k| {
                let prefix = o.var.rsplit_once("__").map(|(p, _)| p).unwrap_or(&o.var);
                format!("{prefix}__{}", k.to_uppercase())
            });
            out.push(self.src.problem(
                None,
                o.var.clone(),
                format!(
                    "environment override names unknown key `{}`; unset the variable or fix its name",
                    join(&self.path, &o.key)
                ),
                hint,
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// [policy], shared by scimwatch.toml and mapping files

/// Where a `[policy]` table stands: keys that span workspaces live only in the config.
pub enum PolicyPlace<'w> {
    /// `scimwatch.toml`, with the configured workspace names (for `consistent`).
    Config(&'w [String]),
    /// A mapping file.
    Mapping,
}

/// Reads a `[policy]` table. Unset keys stay `None` (the caller applies defaults).
pub fn read_policy(
    t: &mut Table<'_, '_>,
    place: PolicyPlace<'_>,
    out: &mut Vec<Problem>,
) -> super::PolicyConfig {
    use super::{PolicyConfig, UnmanagedUsers};
    let allow = t
        .opt_str_list("allow", out)
        .map(|l| l.iter().map(|s| crate::model::Email::new(s)).collect());
    let unmanaged_users = match t.opt_str("unmanaged_users", out).as_deref() {
        None => None,
        Some("alert") => Some(UnmanagedUsers::Alert),
        Some("ignore") => Some(UnmanagedUsers::Ignore),
        Some(other) => {
            out.push(t.key_problem(
                "unmanaged_users",
                format!(
                    "{} is not a choice; write \"alert\" or \"ignore\"",
                    shown(other)
                ),
            ));
            None
        }
    };
    let corporate_domains = t.opt_str_list("corporate_domains", out).and_then(|l| {
        if l.is_empty() {
            out.push(t.key_problem(
                "corporate_domains",
                "is empty, which would make every member a personal account; list your domains, like [\"acme.com\"], or remove the key",
            ));
            return None;
        }
        let mut ok = true;
        let domains: Vec<String> = l
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_lowercase())
            .collect();
        for (raw, d) in l.iter().zip(&domains) {
            let valid = d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !valid {
                out.push(t.key_problem(
                    "corporate_domains",
                    format!("{} is not a domain name; write it like \"acme.com\" (no user part, no spaces)", shown(raw)),
                ));
                ok = false;
            }
        }
        ok.then_some(domains)
    });
    let max_owners = t.opt_u32("max_owners", out);
    let expiry_notice = t.opt_duration("expiry_notice", out).and_then(|d| {
        // An exception runs at most a year, so a longer notice means nothing.
        let bounds = DurationBounds::new(Duration::ZERO, Duration::from_secs(366 * 86_400));
        if bounds.allows(d) {
            Some(d)
        } else {
            out.push(t.key_problem(
                "expiry_notice",
                format!(
                    "{} is out of range; write a duration {}",
                    shown(&humantime::format_duration(d).to_string()),
                    bounds.describe()
                ),
            ));
            None
        }
    });
    let mut consistent = Vec::new();
    match place {
        PolicyPlace::Mapping => {
            if t.has("consistent") {
                out.push(t.key_problem(
                    "consistent",
                    "spans workspaces, so it belongs in [policy] of scimwatch.toml; move it there",
                ));
            }
        }
        PolicyPlace::Config(workspaces) => {
            if let Some(item) = t.value("consistent", out) {
                for set in item.array(out).unwrap_or_default() {
                    let Some(names) = set.str_list(out) else {
                        continue;
                    };
                    let mut ok = true;
                    if names.len() < 2 {
                        out.push(set.problem(
                            "a consistency set needs at least two workspaces, like [\"production\", \"staging\"]",
                            None,
                        ));
                        ok = false;
                    }
                    for (i, name) in names.iter().enumerate() {
                        if names[..i].contains(name) {
                            out.push(set.problem(
                                format!("{} is listed twice in one consistency set; list each workspace once", shown(name)),
                                None,
                            ));
                            ok = false;
                        } else if !workspaces.contains(name) {
                            out.push(set.problem(
                                format!(
                                    "{} is not a configured [[workspace]] name; use one of: {}",
                                    shown(name),
                                    workspaces.join(", ")
                                ),
                                did_you_mean(name, workspaces.iter().map(String::as_str)),
                            ));
                            ok = false;
                        }
                    }
                    if ok {
                        consistent.push(names);
                    }
                }
            }
        }
    }
    PolicyConfig {
        allow,
        unmanaged_users,
        corporate_domains,
        max_owners,
        expiry_notice,
        consistent,
    }
}
