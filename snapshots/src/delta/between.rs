//! The delta between two whole snapshots, read off their bytes: for a
//! gateway handed a whole snapshot that differs little from the one it
//! serves, so that it can apply the change in place instead of loading
//! the directory again.
//!
//! Only changes [`DeltaBody::in_place`] allows are found — rows of users,
//! groups and teams replaced one for one; API keys, grants and permissions
//! inserted, removed or replaced — and only when every other byte of the
//! bodies is the same (the strings, organizations, environments, catalogs,
//! objects, service accounts and custom roles). Rows are compared as bytes,
//! in one pass that resynchronizes within a window of rows after each
//! difference: time in proportion to the bodies' size, not a decode. Any
//! other change is [`DeltaError::NotInPlace`], and the caller loads the
//! snapshot. What is found is checked by applying it
//! ([`Delta::apply_in_place`] hashes the result against the target's hash).

use serde::de::DeserializeOwned;

use super::bytes::{Layout, Table};
use super::format::DeltaHeader;
use super::splice::Splice;
use super::{Delta, DeltaBody, DeltaError};
use crate::body::{ApiKeyRec, GrantRec, GroupRec, PermissionRec, TeamRec, UserRec};
use crate::header::Header;

/// How far apart (in rows of one table) two runs of equal rows may be and
/// still be found; beyond it the change is too large to be worth finding
/// in place.
const WINDOW: usize = 64;

/// Rows of one table of one body.
struct Rows<'a> {
    body: &'a [u8],
    table: &'a Table,
}

impl<'a> Rows<'a> {
    fn len(&self) -> usize {
        self.table.rows.len()
    }

    fn row(&self, i: usize) -> &'a [u8] {
        self.body.get(self.table.span(i, i + 1)).unwrap_or_default()
    }

    fn all(&self) -> &'a [u8] {
        self.body
            .get(self.table.span(0, self.len()))
            .unwrap_or_default()
    }

    fn decode<T: DeserializeOwned>(
        &self,
        from: usize,
        to: usize,
        name: &str,
    ) -> Result<Vec<T>, DeltaError> {
        (from..to)
            .map(|i| {
                postcard::from_bytes(self.row(i)).map_err(|_| {
                    DeltaError::Format(format!("the target's {name} row {i} does not decode"))
                })
            })
            .collect()
    }
}

/// Rows replaced one for one (users, groups, teams: others refer to them
/// by index), each keeping its key (`key`: a username or an id — what
/// lookups by name find; a row under another key is another record).
fn replaced<T: DeserializeOwned, K: PartialEq>(
    old: &Rows<'_>,
    new: &Rows<'_>,
    name: &'static str,
    key: fn(&T) -> K,
) -> Result<Vec<Splice<T>>, DeltaError> {
    if old.len() != new.len() {
        return Err(DeltaError::NotInPlace(name));
    }
    if old.all() == new.all() {
        return Ok(Vec::new());
    }
    let mut splices = Vec::new();
    for i in (0..old.len()).filter(|&i| old.row(i) != new.row(i)) {
        let was: Vec<T> = old.decode(i, i + 1, name)?;
        let now: Vec<T> = new.decode(i, i + 1, name)?;
        if was.iter().map(key).ne(now.iter().map(key)) {
            return Err(DeltaError::NotInPlace("a username, group id or team id"));
        }
        splices.push(Splice {
            at: i as u32,
            remove: 1,
            insert: now,
        });
    }
    Ok(splices)
}

/// Rows inserted, removed or replaced anywhere (API keys, grants,
/// permissions: nothing refers to them by index).
fn spliced<T: DeserializeOwned>(
    old: &Rows<'_>,
    new: &Rows<'_>,
    name: &'static str,
) -> Result<Vec<Splice<T>>, DeltaError> {
    if old.all() == new.all() {
        return Ok(Vec::new());
    }
    let (n, m) = (old.len(), new.len());
    let mut splices = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    while i < n || j < m {
        if i < n && j < m && old.row(i) == new.row(j) {
            i += 1;
            j += 1;
            continue;
        }
        // The nearest (fewest rows skipped) pair of equal rows ahead.
        let mut found = None;
        'near: for d in 1..=2 * WINDOW {
            for a in d.saturating_sub(WINDOW)..=d.min(WINDOW) {
                let b = d - a;
                if i + a < n && j + b < m && old.row(i + a) == new.row(j + b) {
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
        splices.push(Splice {
            at: i as u32,
            remove: a as u32,
            insert: new.decode(j, j + b, name)?,
        });
        i += a;
        j += b;
    }
    Ok(splices)
}

impl Delta {
    /// The delta that turns `base` (laid out as `base_layout`) into
    /// `target`, when the two differ only in what a delta may change in
    /// place; with the target's layout. Both snapshots must be verified
    /// already (the target's body hash is checked again here).
    pub fn between(
        base: &[u8],
        base_layout: &Layout,
        target: &[u8],
    ) -> Result<(Delta, Layout), DeltaError> {
        let bh = Header::parse(base).map_err(DeltaError::Base)?;
        let th = Header::parse(target).map_err(DeltaError::Base)?;
        if bh.is_view() || th.is_view() {
            return Err(DeltaError::NotInPlace("a principal's view"));
        }
        if base_layout.body_sha256 != bh.body_sha256 {
            return Err(DeltaError::NotInPlace("the layout is of another snapshot"));
        }
        let (Some(ob), Some(nb)) = (base.get(bh.body_range()), target.get(th.body_range())) else {
            return Err(DeltaError::Format("truncated".into()));
        };
        // Strings and the tables before users come first in a body: a
        // change there is seen before the target is walked.
        let shared = ob.iter().zip(nb).take_while(|(a, b)| a == b).count();
        if shared < base_layout.users.len_at as usize {
            return Err(DeltaError::NotInPlace("strings or the tables before users"));
        }
        let tl = Layout::of(target).map_err(|e| match e {
            DeltaError::Base(e) => DeltaError::Format(format!("the target: {e}")),
            e => e,
        })?;
        let (o, t) = (base_layout, &tl);
        // Everything outside the editable tables must be the same bytes.
        let same = o
            .gaps(ob.len())
            .into_iter()
            .zip(t.gaps(nb.len()))
            .all(|(a, b)| ob.get(a) == nb.get(b));
        if !same {
            return Err(DeltaError::NotInPlace(
                "organizations, environments, catalogs, objects, service accounts or custom roles",
            ));
        }
        let rows = |body, table| Rows { body, table };
        let body = DeltaBody {
            base: o.lens,
            strings: Vec::new(),
            domain: o.domain,
            orgs: Vec::new(),
            envs: Vec::new(),
            catalogs: Vec::new(),
            objects: Vec::new(),
            users: replaced(
                &rows(ob, &o.users),
                &rows(nb, &t.users),
                "users",
                |u: &UserRec| u.username,
            )?,
            service_accounts: Vec::new(),
            api_keys: spliced::<ApiKeyRec>(
                &rows(ob, &o.api_keys),
                &rows(nb, &t.api_keys),
                "api keys",
            )?,
            groups: replaced(
                &rows(ob, &o.groups),
                &rows(nb, &t.groups),
                "groups",
                |g: &GroupRec| g.id,
            )?,
            group_members: Vec::new(),
            teams: replaced(
                &rows(ob, &o.teams),
                &rows(nb, &t.teams),
                "teams",
                |t: &TeamRec| t.id,
            )?,
            team_members: Vec::new(),
            custom_roles: Vec::new(),
            grants: spliced::<GrantRec>(&rows(ob, &o.grants), &rows(nb, &t.grants), "grants")?,
            permissions: spliced::<PermissionRec>(
                &rows(ob, &o.permissions),
                &rows(nb, &t.permissions),
                "permissions",
            )?,
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
        Ok((Delta { header, body }, tl))
    }
}
