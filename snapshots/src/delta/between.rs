//! The delta between two whole snapshots, read off their bytes: for a
//! gateway handed a whole snapshot that differs little from the one it
//! serves, so that it can apply the change in place instead of loading
//! the directory again.
//!
//! Only changes [`DeltaBody::in_place`] allows are found — rows of users,
//! groups and teams replaced one for one, each keeping its username or id;
//! API keys, grants and permissions inserted, removed or replaced — and
//! only when every other byte of the bodies is the same (the strings,
//! organizations, environments, catalogs, objects, service accounts and
//! custom roles). The target is read alongside the base's [`Layout`]: a
//! target row that starts with the bytes of the base's row *is* that row
//! (postcard encodings are prefix-free), so only the rows that differ are
//! decoded; after a difference the two sides resynchronize within a window
//! of rows. Time in proportion to the bytes compared, not a decode. Any
//! other change is [`DeltaError::NotInPlace`], and the caller loads the
//! snapshot. What is found is to be checked by applying it
//! ([`Delta::apply_in_place`] hashes the result against the target's hash).

use serde::de::DeserializeOwned;

use super::body::DeltaBody;
use super::bytes::{Layout, Table, take};
use super::error::DeltaError;
use super::format::Delta;
use super::format::DeltaHeader;
use super::splice::Splice;
use crate::body::{ApiKeyRec, GrantRec, GroupRec, PermissionRec, TeamRec, UserRec};
use crate::header::Header;

/// How far apart (in rows of one table) two runs of equal rows may be and
/// still be found; beyond it the change is too large to be worth finding
/// in place.
const WINDOW: usize = 64;

/// One editable table of the base, by its layout.
struct Base<'a> {
    body: &'a [u8],
    table: &'a Table,
}

impl<'a> Base<'a> {
    fn len(&self) -> usize {
        self.table.rows.len()
    }

    fn row(&self, i: usize) -> &'a [u8] {
        self.body.get(self.table.span(i, i + 1)).unwrap_or_default()
    }

    fn decode<T: DeserializeOwned>(&self, i: usize, name: &str) -> Result<T, DeltaError> {
        postcard::from_bytes(self.row(i))
            .map_err(|_| DeltaError::Format(format!("the base's {name} row {i} does not decode")))
    }
}

/// The same table of the target, its rows found as they are reached.
struct Target<'a> {
    body: &'a [u8],
    /// Where rows `0..starts.len()` start; the last entry may be the end.
    starts: Vec<usize>,
    /// Its row count.
    len: usize,
    name: &'static str,
}

impl<'a> Target<'a> {
    /// The table starting at `at` (its length prefix).
    fn at(body: &'a [u8], at: &mut usize, name: &'static str) -> Result<Self, DeltaError> {
        let n: u64 = take(body, at, name)?;
        let len = usize::try_from(n)
            .ok()
            .filter(|&n| n <= body.len())
            .ok_or_else(|| DeltaError::Format(format!("the target's {name} table is too long")))?;
        Ok(Target {
            body,
            starts: vec![*at],
            len,
            name,
        })
    }

    /// Where row `j` starts (`j == len`: the table's end), decoding the
    /// rows before it that were not reached yet.
    fn start<T: DeserializeOwned>(&mut self, j: usize) -> Result<usize, DeltaError> {
        while self.starts.len() <= j {
            let mut at = self.starts.last().copied().unwrap_or_default();
            take::<T>(self.body, &mut at, self.name)?;
            self.starts.push(at);
        }
        Ok(self.starts.get(j).copied().unwrap_or_default())
    }

    /// Row `j`'s bytes.
    fn row<T: DeserializeOwned>(&mut self, j: usize) -> Result<&'a [u8], DeltaError> {
        let (from, to) = (self.start::<T>(j)?, self.start::<T>(j + 1)?);
        Ok(self.body.get(from..to).unwrap_or_default())
    }

    /// Whether row `j` is exactly `row`; if so, its end is known without
    /// decoding it.
    fn is<T: DeserializeOwned>(&mut self, j: usize, row: &[u8]) -> Result<bool, DeltaError> {
        let from = self.start::<T>(j)?;
        let same = self.body.get(from..from + row.len()) == Some(row);
        if same && self.starts.len() == j + 1 {
            self.starts.push(from + row.len());
        }
        Ok(same)
    }

    fn decode<T: DeserializeOwned>(&mut self, j: usize) -> Result<T, DeltaError> {
        let name = self.name;
        postcard::from_bytes(self.row::<T>(j)?)
            .map_err(|_| DeltaError::Format(format!("the target's {name} row {j} does not decode")))
    }
}

/// The bytes `range` of the base must be next in the target, at `at`.
fn same_bytes(
    ob: &[u8],
    range: std::ops::Range<usize>,
    nb: &[u8],
    at: &mut usize,
) -> Result<(), DeltaError> {
    let want = ob.get(range).unwrap_or_default();
    if nb.get(*at..*at + want.len()) != Some(want) {
        return Err(DeltaError::NotInPlace(
            "strings, organizations, environments, catalogs, objects, service accounts or custom roles",
        ));
    }
    *at += want.len();
    Ok(())
}

/// Rows replaced one for one (users, groups, teams: others refer to them
/// by index), each keeping its key (`key`: a username or an id — what
/// lookups by name find; a row under another key is another record).
fn replaced<T: DeserializeOwned, K: PartialEq>(
    old: &Base<'_>,
    nb: &[u8],
    at: &mut usize,
    name: &'static str,
    key: fn(&T) -> K,
) -> Result<Vec<Splice<T>>, DeltaError> {
    let mut new = Target::at(nb, at, name)?;
    if new.len != old.len() {
        return Err(DeltaError::NotInPlace(name));
    }
    let mut splices = Vec::new();
    // Unchanged, the whole table is one comparison.
    let whole = old
        .body
        .get(old.table.span(0, old.len()))
        .unwrap_or_default();
    if new.is::<T>(0, whole)? && old.len() > 0 {
        *at = new.start::<T>(0)? + whole.len();
        return Ok(splices);
    }
    new.starts.truncate(1);
    for i in 0..old.len() {
        if new.is::<T>(i, old.row(i))? {
            continue;
        }
        let (was, now): (T, T) = (old.decode(i, name)?, new.decode(i)?);
        if key(&was) != key(&now) {
            return Err(DeltaError::NotInPlace("a username, group id or team id"));
        }
        splices.push(Splice {
            at: i as u32,
            remove: 1,
            insert: vec![now],
        });
    }
    *at = new.start::<T>(new.len)?;
    Ok(splices)
}

/// Rows inserted, removed or replaced anywhere (API keys, grants,
/// permissions: nothing refers to them by index).
fn spliced<T: DeserializeOwned>(
    old: &Base<'_>,
    nb: &[u8],
    at: &mut usize,
    name: &'static str,
) -> Result<Vec<Splice<T>>, DeltaError> {
    let mut new = Target::at(nb, at, name)?;
    let (n, m) = (old.len(), new.len);
    let mut splices = Vec::new();
    let whole = old.body.get(old.table.span(0, n)).unwrap_or_default();
    if n == m && n > 0 && new.is::<T>(0, whole)? {
        *at = new.start::<T>(0)? + whole.len();
        return Ok(splices);
    }
    new.starts.truncate(1);
    let (mut i, mut j) = (0usize, 0usize);
    while i < n || j < m {
        if i < n && j < m && new.is::<T>(j, old.row(i))? {
            i += 1;
            j += 1;
            continue;
        }
        // The nearest (fewest rows skipped) pair of equal rows ahead.
        let mut found = None;
        'near: for d in 1..=2 * WINDOW {
            for a in d.saturating_sub(WINDOW)..=d.min(WINDOW) {
                let b = d - a;
                if i + a < n && j + b < m && new.row::<T>(j + b)? == old.row(i + a) {
                    found = Some((a, b));
                    break 'near;
                }
            }
        }
        let (a, b) = match found {
            Some(ab) => ab,
            // The tables' ends: what is left of both.
            None if n - i <= WINDOW && m - j <= WINDOW => (n - i, m - j),
            None => {
                return Err(DeltaError::NotInPlace(
                    "too many rows changed to find in place",
                ));
            }
        };
        let insert = (j..j + b)
            .map(|k| new.decode::<T>(k))
            .collect::<Result<Vec<_>, _>>()?;
        splices.push(Splice {
            at: i as u32,
            remove: a as u32,
            insert,
        });
        i += a;
        j += b;
    }
    *at = new.start::<T>(m)?;
    Ok(splices)
}

/// Where a body's string table ends (it comes first): its text skipped
/// by its length, its ends skipped varint by varint — nothing allocated.
fn strings_end(body: &[u8]) -> Option<usize> {
    let at = &mut 0usize;
    let text: u64 = take(body, at, "strings").ok()?;
    *at = at.checked_add(usize::try_from(text).ok()?)?;
    let count: u64 = take(body, at, "strings").ok()?;
    let mut left = count;
    while left > 0 {
        // A varint ends at its first byte below 0x80.
        if *body.get(*at)? < 0x80 {
            left -= 1;
        }
        *at += 1;
    }
    Some(*at)
}

impl Delta {
    /// Whether `base` and `target` have the same string table — the first
    /// thing in a body, and what any change that adds or renames anything
    /// changes: without it, no delta between them is in place. Cheap (no
    /// decode); a `false` needs no layout to be known.
    pub fn same_strings(base: &[u8], target: &[u8]) -> bool {
        let (Ok(bh), Ok(th)) = (Header::parse(base), Header::parse(target)) else {
            return false;
        };
        let (Some(ob), Some(nb)) = (base.get(bh.body_range()), target.get(th.body_range())) else {
            return false;
        };
        strings_end(ob).is_some_and(|end| ob.get(..end) == nb.get(..end))
    }

    /// The delta that turns `base` (laid out as `base_layout`) into
    /// `target`, when the two differ only in what a delta may change in
    /// place. The target's body is not hashed here: apply the delta
    /// ([`Delta::apply_in_place`]) to check the result is the target's
    /// hash, and compare it with the target's body.
    pub fn between(base: &[u8], base_layout: &Layout, target: &[u8]) -> Result<Delta, DeltaError> {
        let bh = Header::parse(base).map_err(DeltaError::Base)?;
        let th = Header::parse(target).map_err(DeltaError::Base)?;
        if bh.is_view() || th.is_view() {
            return Err(DeltaError::NotInPlace("a principal's view"));
        }
        let o = base_layout;
        if o.body_sha256 != bh.body_sha256 {
            return Err(DeltaError::NotInPlace("the layout is of another snapshot"));
        }
        let (Some(ob), Some(nb)) = (base.get(bh.body_range()), target.get(th.body_range())) else {
            return Err(DeltaError::Format("truncated".into()));
        };
        let base_of = |table| Base { body: ob, table };
        let r = |from: u32, to: u32| from as usize..to as usize;
        let at = &mut 0usize;
        same_bytes(ob, r(0, o.users.len_at), nb, at)?;
        let users = replaced(&base_of(&o.users), nb, at, "users", |u: &UserRec| {
            u.username
        })?;
        same_bytes(ob, r(o.users.end, o.api_keys.len_at), nb, at)?;
        let api_keys = spliced::<ApiKeyRec>(&base_of(&o.api_keys), nb, at, "api keys")?;
        same_bytes(ob, r(o.api_keys.end, o.groups.len_at), nb, at)?;
        let groups = replaced(&base_of(&o.groups), nb, at, "groups", |g: &GroupRec| g.id)?;
        same_bytes(ob, r(o.groups.end, o.teams.len_at), nb, at)?;
        let teams = replaced(&base_of(&o.teams), nb, at, "teams", |t: &TeamRec| t.id)?;
        same_bytes(ob, r(o.teams.end, o.grants.len_at), nb, at)?;
        let grants = spliced::<GrantRec>(&base_of(&o.grants), nb, at, "grants")?;
        same_bytes(ob, r(o.grants.end, o.permissions.len_at), nb, at)?;
        let permissions =
            spliced::<PermissionRec>(&base_of(&o.permissions), nb, at, "permissions")?;
        same_bytes(ob, o.permissions.end as usize..ob.len(), nb, at)?;
        if *at != nb.len() {
            return Err(DeltaError::NotInPlace("the target's body goes on"));
        }
        let body = DeltaBody {
            base: o.lens,
            strings: Vec::new(),
            domain: o.domain,
            orgs: Vec::new(),
            envs: Vec::new(),
            catalogs: Vec::new(),
            objects: Vec::new(),
            users,
            service_accounts: Vec::new(),
            api_keys,
            groups,
            group_members: Vec::new(),
            teams,
            team_members: Vec::new(),
            custom_roles: Vec::new(),
            grants,
            permissions,
        };
        let header = DeltaHeader {
            flags: 0,
            base_revision: bh.revision,
            base_sha256: bh.body_sha256,
            target_revision: th.revision,
            target_created_at: th.created_at,
            target_sha256: th.body_sha256,
            body_len: 0,
            body_sha256: [0; 32],
        };
        Ok(Delta { header, body })
    }
}
