//! The change log's hash chain: what a MAC covers, and the walk `changes verify` does.
//! Pure: no IO, no clock; `changes.rs` reads and writes the rows.
//!
//! # Design
//!
//! Every chained row stores `mac = HMAC-SHA256(key, canonical(row) || prev_mac)`, where
//! `prev_mac` is the MAC of the chained row before it (stored too, so a broken link can be
//! told from an edited row). The key is `[store] chain_key_env` / `chain_key_file`; it
//! never reaches the database, a log line or an error: the database keeps only its
//! `key_id` (the first 16 hex digits of a SHA-256 of the key), so a wrong key is told
//! from a tampered row. Whoever can edit the SQLite file but lacks the key cannot write a
//! row whose MAC verifies, so an edit, a deletion in the middle or a reordering breaks the
//! chain at that row.
//!
//! Row kinds:
//! - `change`: an access change. Chained when a key is configured, else unchained (no MAC).
//! - `anchor`: written before the first chained row, and whenever unchained rows precede
//!   the next chained append (rows from before the chain existed, or written while no key
//!   was configured). Its `detail` commits to those rows (count, first and last id, a
//!   SHA-256 over their ids and canonical bytes), so they are checked from then on.
//! - `head`: each full pass of the daemon records the chain's head (`detail.head_id` is the
//!   row before it); the daemon also logs the head's id and MAC, which a copy of the logs
//!   kept elsewhere can be compared with: that catches a truncated tail, which no chain
//!   inside the file can.
//! - `prune`: retention deleted the rows below `detail.start_id`; `detail.start_link` is
//!   the MAC the first kept chained row links to. The walk starts from the latest prune
//!   record's claim and, on reaching that record, checks its MAC: a prune nobody with the
//!   key wrote does not verify.
//!
//! What the walk cannot see: rows deleted from the *end* of the log (compare the head with
//! the daemon's logs), and rows written while no key was configured, before an anchor
//! covers them (they are as trustworthy as the file was then).

use sha2::{Digest, Sha256};

use crate::secret::Secret;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The chain key. `Debug` shows only the key id.
#[derive(Clone)]
pub struct ChainKey {
    key: Secret,
    id: String,
}

impl ChainKey {
    pub fn new(secret: &Secret) -> ChainKey {
        let mut h = Sha256::new();
        h.update(b"scimwatch.chain-key-id\0");
        h.update(secret.expose().as_bytes());
        let id = hex(&h.finalize())[..16].to_string();
        ChainKey {
            key: secret.clone(),
            id,
        }
    }

    /// The key's public id: a hash of the key, stored beside each MAC.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The MAC of a row given its canonical bytes and the previous chained row's MAC.
    pub fn mac(&self, canonical: &[u8], prev_mac: Option<&str>) -> String {
        use hmac::Mac as _;
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let Ok(mut m) = HmacSha256::new_from_slice(self.key.expose().as_bytes()) else {
            return String::new();
        };
        m.update(canonical);
        m.update(b"\0prev\0");
        m.update(prev_mac.unwrap_or("").as_bytes());
        hex(&m.finalize().into_bytes())
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainKey(id {}, key ***)", self.id)
    }
}

/// What kind of row.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RowKind {
    Change,
    Anchor,
    Head,
    Prune,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Change => "change",
            RowKind::Anchor => "anchor",
            RowKind::Head => "head",
            RowKind::Prune => "prune",
        }
    }
    pub fn parse(s: &str) -> Option<RowKind> {
        Some(match s {
            "change" => RowKind::Change,
            "anchor" => RowKind::Anchor,
            "head" => RowKind::Head,
            "prune" => RowKind::Prune,
            _ => return None,
        })
    }
}

/// A row of the change log with every column the chain covers. `kind` is kept as the
/// text stored, so an edited kind is reported, not silently mapped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainRow {
    pub id: i64,
    pub kind: String,
    /// The stored text (fixed-width RFC 3339), byte for byte.
    pub at: String,
    pub workspace: String,
    pub user: String,
    pub before: String,
    pub after: String,
    pub actor: Option<String>,
    pub attribution: Option<String>,
    pub idp_event: Option<String>,
    pub latency_ms: Option<i64>,
    pub ticket: Option<String>,
    pub justification: Option<String>,
    pub detail: Option<String>,
    pub key_id: Option<String>,
    pub prev_mac: Option<String>,
    pub mac: Option<String>,
}

impl ChainRow {
    /// The bytes the MAC covers: a version tag, then every column but `id`, `prev_mac`
    /// and `mac`, each length-prefixed (absent and empty differ). The id is left out on
    /// purpose: order is carried by the links, and ids are what reports point at.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"scimwatch.changes.v1");
        let latency = self.latency_ms.map(|l| l.to_string());
        let fields: [Option<&str>; 14] = [
            Some(&self.kind),
            Some(&self.at),
            Some(&self.workspace),
            Some(&self.user),
            Some(&self.before),
            Some(&self.after),
            self.actor.as_deref(),
            self.attribution.as_deref(),
            self.idp_event.as_deref(),
            latency.as_deref(),
            self.ticket.as_deref(),
            self.justification.as_deref(),
            self.detail.as_deref(),
            self.key_id.as_deref(),
        ];
        for f in fields {
            match f {
                None => out.push(0),
                Some(s) => {
                    out.push(1);
                    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        out
    }
}

/// What an anchor commits to: the unchained rows just before it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnchorDetail {
    pub unchained: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    /// SHA-256 (hex) over each row's id (8 bytes, big-endian) and canonical bytes.
    pub digest: String,
}

/// A head record: the row it was written after.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadDetail {
    pub head_id: i64,
}

/// A prune record: where the log now starts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneDetail {
    /// Records appended before this time were due (RFC 3339).
    pub cutoff: String,
    pub pruned: u64,
    /// The first row kept.
    pub start_id: i64,
    /// The MAC of the last chained row deleted: what the first kept chained row links to.
    pub start_link: Option<String>,
}

/// Accumulates [`AnchorDetail`] over unchained rows, in id order.
#[derive(Clone, Default)]
pub struct Pending {
    hash: Sha256,
    count: u64,
    first: Option<(i64, String)>,
    last_id: Option<i64>,
}

impl Pending {
    pub fn push(&mut self, row: &ChainRow) {
        self.hash.update(row.id.to_be_bytes());
        self.hash.update(row.canonical());
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((row.id, row.at.clone()));
        }
        self.last_id = Some(row.id);
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn detail(&self) -> AnchorDetail {
        AnchorDetail {
            unchained: self.count,
            first_id: self.first.as_ref().map(|f| f.0),
            last_id: self.last_id,
            digest: hex(&self.hash.clone().finalize()),
        }
    }
}

/// Where the walk stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every row verified (or is committed to by an anchor that verified).
    Intact(Summary),
    /// The first broken link.
    Broken {
        id: i64,
        /// The row's stored time (as stored; it may itself be what was edited).
        at: String,
        what: String,
    },
    /// The walk cannot vouch either way.
    CannotCheck(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub chained: u64,
    /// Rows without a MAC that an anchor commits to (from before the chain, or written
    /// while no key was configured).
    pub anchored: u64,
    /// The last row: id and MAC (compare with the daemon's "Change log head." lines).
    pub head: Option<(i64, String)>,
    /// The latest prune: (record id, first row kept).
    pub pruned_from: Option<(i64, i64)>,
}

/// The walk over the log in id order. Feed rows with [`Verifier::push`], then
/// [`Verifier::finish`]. Stops at the first problem (`push` returns it).
pub struct Verifier<'k> {
    key: &'k ChainKey,
    /// From the latest prune record: (its id, the first row kept, the link it starts from).
    start: Option<(i64, PruneDetail)>,
    started: bool,
    seen_prune: bool,
    last_mac: Option<String>,
    last_id: Option<i64>,
    pending: Pending,
    summary: Summary,
}

impl<'k> Verifier<'k> {
    /// `latest_prune` is the log's latest `prune` row, if any: the walk starts where it
    /// says and checks its MAC on the way.
    pub fn new(
        key: &'k ChainKey,
        latest_prune: Option<&ChainRow>,
    ) -> Result<Verifier<'k>, Verdict> {
        let start = match latest_prune {
            None => None,
            Some(p) => {
                let detail: PruneDetail = p
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .ok_or_else(|| Verdict::Broken {
                        id: p.id,
                        at: p.at.clone(),
                        what: "a prune record whose detail cannot be read".into(),
                    })?;
                Some((p.id, detail))
            }
        };
        Ok(Verifier {
            key,
            start,
            started: false,
            seen_prune: false,
            last_mac: None,
            last_id: None,
            pending: Pending::default(),
            summary: Summary::default(),
        })
    }

    pub fn push(&mut self, row: &ChainRow) -> Result<(), Verdict> {
        let broken = |what: String| Verdict::Broken {
            id: row.id,
            at: row.at.clone(),
            what,
        };
        if !self.started {
            self.started = true;
            if let Some((pid, d)) = &self.start {
                if row.id != d.start_id {
                    return Err(broken(format!(
                        "the log starts at record {} but the last prune (record {pid}) kept every record from {}: records at the start were deleted",
                        row.id, d.start_id
                    )));
                }
                self.last_mac.clone_from(&d.start_link);
            }
        }
        self.summary.rows += 1;
        let first_kept = self.start.is_some() && self.summary.rows == 1;
        let Some(kind) = RowKind::parse(&row.kind) else {
            return Err(broken(format!("unknown record kind {:?}", row.kind)));
        };
        let Some(mac) = &row.mac else {
            if kind != RowKind::Change {
                return Err(broken(format!(
                    "a {} record without a MAC: only the daemon with the chain key writes those",
                    kind.as_str()
                )));
            }
            self.pending.push(row);
            self.last_id = Some(row.id);
            return Ok(());
        };
        if row.key_id.as_deref() != Some(self.key.id()) {
            return Err(Verdict::CannotCheck(format!(
                "record {} was chained with key id {}, the configured chain key has id {}: configure the key the log was written with",
                row.id,
                row.key_id.as_deref().unwrap_or("(none)"),
                self.key.id()
            )));
        }
        let expected = self.key.mac(&row.canonical(), row.prev_mac.as_deref());
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err(broken(
                "its MAC does not match its contents: the record was edited".into(),
            ));
        }
        if kind != RowKind::Anchor && !self.pending.is_empty() {
            let (id, at) = self.pending.first.clone().unwrap_or_default();
            return Err(Verdict::Broken {
                id,
                at,
                what: "it carries no MAC and no anchor covers it: written without the chain key, or inserted by hand".into(),
            });
        }
        if row.prev_mac != self.last_mac {
            let what = match (self.last_id, &self.last_mac) {
                (None, _) => "it links to a record that is not in the log: records before it were deleted".to_string(),
                (Some(prev), Some(_)) => format!(
                    "it does not link to the chained record before it (the chain had reached record {prev}): a record between them was deleted, or records were reordered"
                ),
                (Some(prev), None) => format!(
                    "it links to a record that is not in the log (the records before it, up to {prev}, are unchained): records were deleted"
                ),
            };
            return Err(broken(what));
        }
        match kind {
            RowKind::Anchor => {
                let claimed: AnchorDetail = row
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .ok_or_else(|| broken("an anchor whose detail cannot be read".into()))?;
                let pruned_before = match (&self.start, claimed.first_id) {
                    (Some((_, d)), Some(first)) => first < d.start_id,
                    _ => false,
                };
                // A prune never splits a run of unchained rows, so a run that began
                // before the first kept row was pruned whole.
                if !(pruned_before && self.pending.is_empty()) {
                    let found = self.pending.detail();
                    if found != claimed {
                        let range = match (claimed.first_id, claimed.last_id) {
                            (Some(a), Some(b)) => format!("records {a}–{b}"),
                            _ => "no records".to_string(),
                        };
                        return Err(broken(format!(
                            "the unchained records before this anchor are not those it committed to ({range}, {} in all; found {} now): an unchained record was edited, deleted or added",
                            claimed.unchained, found.unchained
                        )));
                    }
                    self.summary.anchored += found.unchained;
                }
                self.pending = Pending::default();
            }
            RowKind::Head => {
                let claimed: Option<HeadDetail> = row
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok());
                let names_prev = match (claimed, &self.start) {
                    // The first row kept by a prune: the row it names was pruned.
                    (Some(h), Some((_, d))) if first_kept => h.head_id < d.start_id,
                    (claimed, _) => claimed.map(|h| h.head_id) == self.last_id,
                };
                if !names_prev {
                    return Err(broken(format!(
                        "a head record that does not name the record before it ({})",
                        self.last_id.map_or("none".into(), |i| i.to_string())
                    )));
                }
            }
            RowKind::Prune => {
                if self.start.as_ref().is_some_and(|(pid, _)| *pid == row.id) {
                    self.seen_prune = true;
                }
            }
            RowKind::Change => {}
        }
        self.summary.chained += 1;
        self.last_mac = Some(mac.clone());
        self.last_id = Some(row.id);
        self.summary.head = Some((row.id, mac.clone()));
        Ok(())
    }

    pub fn finish(mut self) -> Verdict {
        if let Some((pid, d)) = &self.start {
            if !self.seen_prune {
                return Verdict::Broken {
                    id: *pid,
                    at: String::new(),
                    what: "the prune record the walk started from was not reached".into(),
                };
            }
            self.summary.pruned_from = Some((*pid, d.start_id));
        }
        if !self.pending.is_empty() {
            let (id, at) = self.pending.first.clone().unwrap_or_default();
            if self.summary.chained == 0 {
                return Verdict::CannotCheck(format!(
                    "no record is chained yet ({} records were written without a chain key); the chain starts with the next record the daemon appends with the key",
                    self.pending.count
                ));
            }
            return Verdict::Broken {
                id,
                at,
                what: format!(
                    "it and the {} records after it carry no MAC: written without the chain key (the next append with the key anchors them), or appended by hand",
                    self.pending.count - 1
                ),
            };
        }
        Verdict::Intact(self.summary)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Builds the chained row that follows `prev_mac` (fills `key_id`, `prev_mac`, `mac`).
pub fn seal(key: &ChainKey, mut row: ChainRow, prev_mac: Option<String>) -> ChainRow {
    row.key_id = Some(key.id().to_string());
    row.prev_mac = prev_mac;
    row.mac = Some(key.mac(&row.canonical(), row.prev_mac.as_deref()));
    row
}

#[cfg(test)]
mod tests;
