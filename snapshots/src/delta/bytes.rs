//! A delta applied to the bytes of its base, without decoding the base.
//!
//! When a delta leaves alone every table that others refer to by index —
//! no string, organization, user, group … inserted or removed — every row
//! it does not edit encodes exactly as before. The target's body is then
//! the base's bytes with a few rows replaced: copied, not rebuilt, and
//! hashed to check that it is exactly the snapshot the delta promises. A
//! [`Layout`] (where each row of the editable tables starts) makes the
//! replacements; the target's layout comes out of the same pass, so a
//! chain of deltas never decodes a whole body again. Any other delta is
//! [`DeltaError::NotInPlace`]: apply it with [`Delta::apply_to`].
//!
//! The same condition ([`DeltaBody::in_place`]) lets the engine apply the
//! delta to its loaded state (`policy-wasm`'s patch), given the grants it
//! removes ([`Applied::removed_grants`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::body::{DeltaBody, MemberEdit, TableLens};
use super::error::DeltaError;
use super::format::Delta;
use super::splice::{Remap, Splice, apply as apply_splices};
use crate::body::{
    ApiKeyRec, CatalogRec, CustomRoleRec, EnvRec, GrantRec, GroupRec, ObjectRec, OrgRec,
    PermissionRec, ServiceAccountRec, StringTable, TeamRec, UserRec,
};
use crate::header::{HEADER_LEN, Header};
use sha2::{Digest, Sha256};

/// Bytes between two hash checkpoints.
const CHECKPOINT: usize = 64 * 1024;

/// Hasher states at every [`CHECKPOINT`] bytes of a body.
#[derive(Clone, Default)]
struct Checkpoints(Vec<Sha256>);

impl Checkpoints {
    /// The states of `hasher` (which has hashed `done` bytes of `body`,
    /// a multiple of [`CHECKPOINT`]) over the rest of `body`, after
    /// `kept`; and the body's SHA-256.
    fn extend(
        mut kept: Vec<Sha256>,
        mut hasher: Sha256,
        body: &[u8],
        done: usize,
    ) -> (Checkpoints, [u8; 32]) {
        for piece in body.get(done..).unwrap_or_default().chunks(CHECKPOINT) {
            hasher.update(piece);
            if piece.len() == CHECKPOINT {
                kept.push(hasher.clone());
            }
        }
        (Checkpoints(kept), hasher.finalize().into())
    }

    /// The SHA-256 of `body` (whose first `unchanged` bytes are those of
    /// the body these checkpoints were taken on), hashed from the last
    /// checkpoint before `unchanged`; and the new checkpoints.
    fn rehash(&self, body: &[u8], unchanged: usize) -> (Checkpoints, [u8; 32]) {
        let k = (unchanged / CHECKPOINT).min(self.0.len());
        let hasher = match k.checked_sub(1).and_then(|i| self.0.get(i)) {
            Some(h) => h.clone(),
            None => Sha256::new(),
        };
        let kept = self.0.get(..k).unwrap_or_default().to_vec();
        Self::extend(kept, hasher, body, k * CHECKPOINT)
    }

    fn digests(&self) -> Vec<[u8; 32]> {
        self.0.iter().map(|h| h.clone().finalize().into()).collect()
    }
}

impl PartialEq for Checkpoints {
    fn eq(&self, other: &Self) -> bool {
        self.digests() == other.digests()
    }
}

impl Eq for Checkpoints {}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} checkpoints", self.0.len())
    }
}

/// Where the rows of one table are, as offsets into the body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Table {
    /// The table's length prefix.
    pub(super) len_at: u32,
    /// Each row's first byte.
    pub(super) rows: Vec<u32>,
    /// Just past the last row.
    pub(super) end: u32,
}

impl Table {
    fn row_start(&self, i: usize) -> u32 {
        self.rows.get(i).copied().unwrap_or(self.end)
    }

    /// Bytes of rows `from..to`.
    pub(super) fn span(&self, from: usize, to: usize) -> std::ops::Range<usize> {
        self.row_start(from) as usize..self.row_start(to) as usize
    }
}

/// Where each row of the tables a delta may edit in place starts in a
/// snapshot's body: users, API keys, groups, teams, grants, permissions.
/// About 4 bytes per row; made once per full snapshot ([`Layout::of`]),
/// then carried from delta to delta.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The body it describes.
    pub(super) body_sha256: [u8; 32],
    /// The SHA-256 of the body's first `CHECKPOINT × (k + 1)` bytes, as
    /// the hasher's state: a target whose first change is at byte `x` is
    /// hashed from the last checkpoint before `x`, not from the start.
    checkpoints: Checkpoints,
    pub(super) users: Table,
    pub(super) api_keys: Table,
    pub(super) groups: Table,
    pub(super) teams: Table,
    pub(super) grants: Table,
    pub(super) permissions: Table,
    /// Every table's length (the engine checks a delta's base against them).
    pub(super) lens: TableLens,
    /// The body's domain organization.
    pub(super) domain: u32,
}

fn malformed(what: &str) -> DeltaError {
    DeltaError::Format(format!("the base's body does not decode ({what})"))
}

/// Reads one value at `at`, moving `at` past it.
pub(super) fn take<T: DeserializeOwned>(
    body: &[u8],
    at: &mut usize,
    what: &str,
) -> Result<T, DeltaError> {
    let rest = body.get(*at..).ok_or_else(|| malformed(what))?;
    let (v, left): (T, &[u8]) = postcard::take_from_bytes(rest).map_err(|_| malformed(what))?;
    *at = body.len() - left.len();
    Ok(v)
}

/// Reads a table at `at`, noting where each row starts.
fn table<T: DeserializeOwned>(
    body: &[u8],
    at: &mut usize,
    what: &str,
) -> Result<Table, DeltaError> {
    let len_at = *at as u32;
    let n: u64 = take(body, at, what)?;
    // Every row takes a byte at least: a length beyond the body is a lie.
    if n > body.len() as u64 {
        return Err(malformed(what));
    }
    let mut rows = Vec::with_capacity(n as usize);
    for _ in 0..n {
        rows.push(*at as u32);
        take::<T>(body, at, what)?;
    }
    Ok(Table {
        len_at,
        rows,
        end: *at as u32,
    })
}

/// Skips a table at `at`; its length.
fn skip<T: DeserializeOwned>(body: &[u8], at: &mut usize, what: &str) -> Result<u32, DeltaError> {
    let n: u64 = take(body, at, what)?;
    for _ in 0..n {
        take::<T>(body, at, what)?;
    }
    u32::try_from(n).map_err(|_| malformed(what))
}

impl Layout {
    /// The layout of `snapshot`'s body (a directory snapshot, already
    /// verified: this only walks it). Costs about a decode; made off the
    /// path of any request.
    pub fn of(snapshot: &[u8]) -> Result<Layout, DeltaError> {
        let header = Header::parse(snapshot).map_err(DeltaError::Base)?;
        let body = snapshot
            .get(header.body_range())
            .ok_or_else(|| malformed("truncated"))?;
        if body.len() > u32::MAX as usize {
            return Err(malformed("larger than 4 GiB"));
        }
        let at = &mut 0usize;
        let strings =
            crate::exact_vec::with_budget(body.len(), || take::<StringTable>(body, at, "strings"))?;
        let domain = take::<u32>(body, at, "domain")?;
        let orgs = skip::<OrgRec>(body, at, "orgs")?;
        let envs = skip::<EnvRec>(body, at, "envs")?;
        let catalogs = skip::<CatalogRec>(body, at, "catalogs")?;
        let objects = skip::<ObjectRec>(body, at, "objects")?;
        let users = table::<UserRec>(body, at, "users")?;
        let service_accounts = skip::<ServiceAccountRec>(body, at, "service accounts")?;
        let api_keys = table::<ApiKeyRec>(body, at, "api keys")?;
        let groups = table::<GroupRec>(body, at, "groups")?;
        let teams = table::<TeamRec>(body, at, "teams")?;
        let custom_roles = skip::<CustomRoleRec>(body, at, "custom roles")?;
        let grants = table::<GrantRec>(body, at, "grants")?;
        let permissions = table::<PermissionRec>(body, at, "permissions")?;
        let n = |t: &Table| t.rows.len() as u32;
        let lens = TableLens {
            strings: strings.ends.len() as u32,
            orgs,
            envs,
            catalogs,
            objects,
            users: n(&users),
            service_accounts,
            api_keys: n(&api_keys),
            groups: n(&groups),
            teams: n(&teams),
            custom_roles,
            grants: n(&grants),
            permissions: n(&permissions),
        };
        let (checkpoints, sha) = Checkpoints::extend(Vec::new(), Sha256::new(), body, 0);
        if sha != header.body_sha256 {
            return Err(DeltaError::Base(crate::DecodeError::HashMismatch));
        }
        Ok(Layout {
            body_sha256: header.body_sha256,
            checkpoints,
            users,
            api_keys,
            groups,
            teams,
            grants,
            permissions,
            lens,
            domain,
        })
    }

    /// Memory it holds.
    pub fn heap_bytes(&self) -> usize {
        self.checkpoints.0.capacity() * std::mem::size_of::<Sha256>()
            + [
                &self.users,
                &self.api_keys,
                &self.groups,
                &self.teams,
                &self.grants,
                &self.permissions,
            ]
            .iter()
            .map(|t| t.rows.capacity() * 4)
            .sum::<usize>()
    }
}

/// A delta applied to bytes: the target snapshot and what the engine
/// needs to apply the same delta in place.
#[derive(Debug)]
pub struct Applied {
    /// The target snapshot (unsigned), its body's SHA-256 checked against
    /// the delta's promise.
    pub snapshot: Vec<u8>,
    /// The target's layout, for the next delta.
    pub layout: Layout,
    /// The base's grants at the rows the delta removes, in order.
    pub removed_grants: Vec<GrantRec>,
}

/// Rows replacing `remove` rows at `at`, already encoded.
struct Edit {
    at: u32,
    remove: u32,
    rows: Vec<Vec<u8>>,
}

fn encode_rows<T: Serialize>(rows: &[T]) -> Result<Vec<Vec<u8>>, DeltaError> {
    rows.iter()
        .map(|r| postcard::to_allocvec(r).map_err(|e| DeltaError::Encode(e.to_string())))
        .collect()
}

fn edits<T: Serialize>(splices: &[Splice<T>]) -> Result<Vec<Edit>, DeltaError> {
    splices
        .iter()
        .map(|s| {
            Ok(Edit {
                at: s.at,
                remove: s.remove,
                rows: encode_rows(&s.insert)?,
            })
        })
        .collect()
}

/// Writes `t` (from `base`) with `edits` applied into `out`: its new
/// layout, and the first byte of the body that may differ from the base's
/// (`None` when the table is unchanged).
/// Offsets in `out` count from `HEADER_LEN` (where the body starts).
fn write_table(
    out: &mut Vec<u8>,
    base: &[u8],
    t: &Table,
    edits: &[Edit],
    table_name: &'static str,
) -> Result<(Table, Option<u32>), DeltaError> {
    let old_len = t.rows.len();
    let mut new_len = old_len as i64;
    for e in edits {
        if e.at as usize + e.remove as usize > old_len {
            return Err(DeltaError::apply(
                table_name,
                "a splice reaches past the table",
            ));
        }
        new_len += e.rows.len() as i64 - i64::from(e.remove);
    }
    let here = |out: &Vec<u8>| (out.len() - HEADER_LEN) as u32;
    let len_at = here(out);
    let with_len = postcard::to_extend(&(new_len as u64), std::mem::take(out))
        .map_err(|e| DeltaError::Encode(e.to_string()))?;
    *out = with_len;
    let mut rows = Vec::with_capacity(new_len.max(0) as usize);
    let carry = |out: &mut Vec<u8>, rows: &mut Vec<u32>, from: usize, to: usize| {
        let src = t.span(from, to);
        let shift = i64::from(here(out)) - src.start as i64;
        rows.extend(
            t.rows
                .get(from..to)
                .unwrap_or_default()
                .iter()
                .map(|&r| (i64::from(r) + shift) as u32),
        );
        out.extend_from_slice(base.get(src).unwrap_or_default());
    };
    let mut pos = 0usize;
    for e in edits {
        carry(out, &mut rows, pos, e.at as usize);
        for r in &e.rows {
            rows.push(here(out));
            out.extend_from_slice(r);
        }
        pos = e.at as usize + e.remove as usize;
    }
    carry(out, &mut rows, pos, old_len);
    let first_change = edits.first().map(|e| {
        if new_len as usize == old_len {
            t.row_start(e.at as usize)
        } else {
            len_at
        }
    });
    Ok((
        Table {
            len_at,
            rows,
            end: here(out),
        },
        first_change,
    ))
}

impl DeltaBody {
    /// Whether this delta leaves every table that others refer to by
    /// index alone, except for rows of users, groups and teams replaced
    /// one for one — so that it can be applied to bytes ([`Delta::apply_in_place`])
    /// and to a loaded engine. `Err` names what needs a full load.
    pub fn in_place(&self) -> Result<(), &'static str> {
        self.in_place_with(false)
    }

    /// [`DeltaBody::in_place`], or besides it strings and users appended
    /// at the end of their tables (nothing refers to a new row yet): what
    /// a loaded engine and a decoded body apply in place — not the bytes
    /// of a snapshot, whose string table sits before every record.
    pub fn appends_in_place(&self) -> Result<(), &'static str> {
        self.in_place_with(true)
    }

    fn in_place_with(&self, appends: bool) -> Result<(), &'static str> {
        /// One splice adding rows at the end of a table of `len` rows.
        fn appended<T>(s: &[Splice<T>], len: u32) -> bool {
            matches!(s, [one] if one.at == len && one.remove == 0)
        }
        let (strings, users) = if appends {
            let users = match self.users.split_last() {
                Some((last, rest)) if last.at == self.base.users && last.remove == 0 => rest,
                _ => &self.users[..],
            };
            let strings: &[Splice<String>] = if appended(&self.strings, self.base.strings) {
                &[]
            } else {
                &self.strings
            };
            (strings, users)
        } else {
            (&self.strings[..], &self.users[..])
        };
        fn none<T>(s: &[Splice<T>], what: &'static str) -> Result<(), &'static str> {
            if s.is_empty() { Ok(()) } else { Err(what) }
        }
        fn one_for_one<T>(
            s: &[Splice<T>],
            len: u32,
            what: &'static str,
        ) -> Result<(), &'static str> {
            if s.iter().all(|s| {
                s.remove as usize == s.insert.len() && s.at.saturating_add(s.remove) <= len
            }) {
                Ok(())
            } else {
                Err(what)
            }
        }
        none(strings, "strings")?;
        none(&self.orgs, "organizations")?;
        none(&self.envs, "environments")?;
        none(&self.catalogs, "catalogs")?;
        none(&self.objects, "objects")?;
        none(&self.service_accounts, "service accounts")?;
        none(&self.custom_roles, "custom roles")?;
        one_for_one(users, self.base.users, "users")?;
        one_for_one(&self.groups, self.base.groups, "groups")?;
        one_for_one(&self.teams, self.base.teams, "teams")?;
        Ok(())
    }
}

/// The changed rows of a table of records with member lists: rows
/// replaced one for one, then member edits on top.
fn member_rows<R: Clone + Serialize + DeserializeOwned, M: Copy>(
    body: &[u8],
    t: &Table,
    splices: &[Splice<R>],
    member_edits: &[MemberEdit<M>],
    members: fn(&mut R) -> &mut Vec<M>,
    name: &'static str,
) -> Result<Vec<Edit>, DeltaError> {
    let mut changed: std::collections::BTreeMap<u32, R> = std::collections::BTreeMap::new();
    for s in splices {
        for (k, r) in s.insert.iter().enumerate() {
            changed.insert(s.at + k as u32, r.clone());
        }
    }
    for e in member_edits {
        let row = match changed.remove(&e.row) {
            Some(r) => r,
            None => {
                if e.row as usize >= t.rows.len() {
                    return Err(DeltaError::apply(name, "no such row"));
                }
                let at = &mut (t.row_start(e.row as usize) as usize);
                take::<R>(body, at, name)?
            }
        };
        let mut row = row;
        let m = members(&mut row);
        *m = apply_splices(name, m, &e.splices, |&x| Some(x))?;
        changed.insert(e.row, row);
    }
    changed
        .into_iter()
        .map(|(at, r)| {
            Ok(Edit {
                at,
                remove: 1,
                rows: vec![
                    postcard::to_allocvec(&r).map_err(|e| DeltaError::Encode(e.to_string()))?,
                ],
            })
        })
        .collect()
}

impl Delta {
    /// Applies this delta to the bytes of `base`, whose layout is
    /// `layout`, when [`DeltaBody::in_place`] allows (else
    /// [`DeltaError::NotInPlace`]): the target snapshot, checked against
    /// the SHA-256 the delta promises, in time that follows the size of
    /// the body copied and hashed, not its decoding.
    pub fn apply_in_place(&self, base: &[u8], layout: &Layout) -> Result<Applied, DeltaError> {
        let h = Header::parse(base).map_err(DeltaError::Base)?;
        if !self.header.applies_to(&h) {
            return Err(self.header.wrong_base(h.revision, &h.body_sha256));
        }
        if h.is_view() {
            return Err(DeltaError::NotInPlace("a principal's view"));
        }
        if layout.body_sha256 != h.body_sha256 {
            return Err(DeltaError::NotInPlace("the layout is of another snapshot"));
        }
        let d = &self.body;
        d.in_place().map_err(DeltaError::NotInPlace)?;
        // In order and within their tables (the row edits below rely on it).
        Remap::new("users", &d.users, d.base.users)?;
        Remap::new("api_keys", &d.api_keys, d.base.api_keys)?;
        Remap::new("groups", &d.groups, d.base.groups)?;
        Remap::new("teams", &d.teams, d.base.teams)?;
        Remap::new("grants", &d.grants, d.base.grants)?;
        Remap::new("permissions", &d.permissions, d.base.permissions)?;
        let body = base
            .get(h.body_range())
            .ok_or_else(|| malformed("truncated"))?;
        let lens_match = [
            (&layout.users, d.base.users),
            (&layout.api_keys, d.base.api_keys),
            (&layout.groups, d.base.groups),
            (&layout.teams, d.base.teams),
            (&layout.grants, d.base.grants),
            (&layout.permissions, d.base.permissions),
        ]
        .iter()
        .all(|(t, n)| t.rows.len() == *n as usize);
        if !lens_match {
            return Err(DeltaError::apply(
                "(all)",
                "the base's tables are not the lengths the delta was made from",
            ));
        }
        let mut removed_grants = Vec::new();
        for s in &d.grants {
            for row in s.at..s.at.saturating_add(s.remove) {
                if row as usize >= layout.grants.rows.len() {
                    return Err(DeltaError::apply(
                        "grants",
                        "a splice reaches past the table",
                    ));
                }
                let at = &mut (layout.grants.row_start(row as usize) as usize);
                removed_grants.push(take::<GrantRec>(body, at, "grants")?);
            }
        }
        let groups = member_rows(
            body,
            &layout.groups,
            &d.groups,
            &d.group_members,
            |g: &mut GroupRec| &mut g.members,
            "group_members",
        )?;
        let teams = member_rows(
            body,
            &layout.teams,
            &d.teams,
            &d.team_members,
            |t: &mut TeamRec| &mut t.members,
            "team_members",
        )?;

        // The header goes in last, when the body's hash is known.
        let mut b = Vec::with_capacity(HEADER_LEN + body.len() + 4096);
        b.resize(HEADER_LEN, 0);
        let gap = |b: &mut Vec<u8>, from: u32, to: u32| {
            b.extend_from_slice(body.get(from as usize..to as usize).unwrap_or_default());
        };
        gap(&mut b, 0, layout.users.len_at);
        let (users, c1) = write_table(&mut b, body, &layout.users, &edits(&d.users)?, "users")?;
        gap(&mut b, layout.users.end, layout.api_keys.len_at);
        let (api_keys, c2) = write_table(
            &mut b,
            body,
            &layout.api_keys,
            &edits(&d.api_keys)?,
            "api_keys",
        )?;
        gap(&mut b, layout.api_keys.end, layout.groups.len_at);
        let (groups, c3) = write_table(&mut b, body, &layout.groups, &groups, "groups")?;
        gap(&mut b, layout.groups.end, layout.teams.len_at);
        let (teams, c4) = write_table(&mut b, body, &layout.teams, &teams, "teams")?;
        gap(&mut b, layout.teams.end, layout.grants.len_at);
        let (grants, c5) = write_table(&mut b, body, &layout.grants, &edits(&d.grants)?, "grants")?;
        gap(&mut b, layout.grants.end, layout.permissions.len_at);
        let (permissions, c6) = write_table(
            &mut b,
            body,
            &layout.permissions,
            &edits(&d.permissions)?,
            "permissions",
        )?;
        gap(&mut b, layout.permissions.end, body.len() as u32);

        // Everything before the first change is the base's: hashed from
        // the base's last checkpoint before it.
        let unchanged = [c1, c2, c3, c4, c5, c6]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len() as u32) as usize;
        let (checkpoints, sha) = layout
            .checkpoints
            .rehash(b.get(HEADER_LEN..).unwrap_or_default(), unchanged);
        if sha != self.header.target_sha256 {
            return Err(DeltaError::TargetMismatch {
                want: hex::encode(self.header.target_sha256),
                got: hex::encode(sha),
            });
        }
        let header = Header {
            format_version: h.format_version,
            flags: 0,
            revision: self.header.target_revision,
            created_at: self.header.target_created_at,
            body_len: (b.len() - HEADER_LEN) as u64,
            body_sha256: sha,
        };
        if let Some(head) = b.get_mut(..HEADER_LEN) {
            head.copy_from_slice(&header.to_bytes());
        }
        let n = |t: &Table| t.rows.len() as u32;
        let lens = TableLens {
            users: n(&users),
            api_keys: n(&api_keys),
            groups: n(&groups),
            teams: n(&teams),
            grants: n(&grants),
            permissions: n(&permissions),
            ..layout.lens
        };
        Ok(Applied {
            snapshot: b,
            layout: Layout {
                body_sha256: sha,
                checkpoints,
                users,
                api_keys,
                groups,
                teams,
                grants,
                permissions,
                lens,
                domain: layout.domain,
            },
            removed_grants,
        })
    }
}
