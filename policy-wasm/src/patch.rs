//! A delta applied to a loaded engine in place, instead of loading the
//! snapshot it makes.
//!
//! A delta's usual change — a user's grants, group and team memberships,
//! a changed user record, API keys, individual permissions — edits a few
//! records and the per-principal lists that index them ([`Lists`]), in
//! time and memory that follow the change rather than the directory. A
//! delta that inserts or removes rows other tables refer to (users,
//! groups, organizations …), changes strings, or renames what a lookup
//! finds is refused with [`PatchError::NotInPlace`]: its caller loads the
//! target snapshot in full. Everything is checked before anything changes,
//! so a refused delta leaves the engine as it was. The rows a delta brings
//! pass the same checks as a decoded body's (`snapshots::integrity`).
//!
//! The engine keeps no grant table (its grants live in the per-principal
//! lists, each grant with its row number), so whoever applies a delta
//! passes the base's grants that it removes, read from the base snapshot;
//! each must be exactly the grant the engine holds at that row.
//!
//! `policy-wasm/tests/patch.rs` checks that an engine patched this way is
//! indistinguishable from one that loaded the target.
#![allow(
    clippy::indexing_slicing,
    reason = "rows are checked against the tables (Remap::new, in_place) before any is used, and the body's indices were checked when it was decoded"
)]

use std::collections::BTreeMap;

use portcullis_snapshots::DecodeError;
use portcullis_snapshots::body::{GrantRec, GroupRec, PrincipalRef, TeamRec, UserRec};
use portcullis_snapshots::delta::{DeltaBody, DeltaError, Remap, Splice, TableLens, apply_splices};
use portcullis_snapshots::integrity;
use portcullis_snapshots::vocabulary::AdminRole;
use thiserror::Error;

use crate::facts::Grant;
use crate::index::{ByPrincipal, Indexed, api_key_table};

/// Why a delta was not applied in place. The engine is unchanged.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The delta changes what cannot be edited in place: load the full
    /// snapshot it makes (`Delta::apply_to`) instead.
    #[error("this delta cannot be applied in place ({0}); load the snapshot it makes instead")]
    NotInPlace(&'static str),
    /// The delta does not fit the loaded snapshot.
    #[error(transparent)]
    Refused(#[from] DeltaError),
    /// A row the delta brings breaks an invariant of snapshots.
    #[error("a row the delta brings is refused: {0}")]
    Row(#[from] DecodeError),
}

/// Everything a delta changes, checked and built before anything changes.
struct Plan {
    users: Vec<(u32, UserRec)>,
    /// Users appended, in order (their rows and strings are in the
    /// body already, put there by `patch` before the plan).
    new_users: Vec<UserRec>,
    groups: BTreeMap<u32, GroupRec>,
    teams: BTreeMap<u32, TeamRec>,
    api_keys: Option<Vec<portcullis_snapshots::body::ApiKeyRec>>,
    permissions: Option<Vec<portcullis_snapshots::body::PermissionRec>>,
    /// Grants removed: holder and base row.
    grants_removed: Vec<(PrincipalRef, u32)>,
    /// Grants inserted: target row and record.
    grants_added: Vec<(u32, GrantRec)>,
    grant_rows: Remap,
}

/// The rows of `splices` if every splice replaces rows one for one: the
/// only edit of a table others refer to that keeps every reference valid.
fn in_place<'a, T>(
    table: &'static str,
    splices: &'a [Splice<T>],
    len: usize,
) -> Result<Vec<(u32, &'a T)>, PatchError> {
    Remap::new(table, splices, len as u32)?;
    let mut rows = Vec::new();
    for s in splices {
        if s.remove as usize != s.insert.len() || s.at as usize + s.insert.len() > len {
            return Err(PatchError::NotInPlace(table));
        }
        rows.extend(
            s.insert
                .iter()
                .enumerate()
                .map(|(k, r)| (s.at + k as u32, r)),
        );
    }
    Ok(rows)
}

/// The delta's user splices that replace rows, and the rows it appends
/// (a last splice at the end of the base's users that removes none).
fn appended_users(d: &DeltaBody) -> (&[Splice<UserRec>], &[UserRec]) {
    match d.users.split_last() {
        Some((last, rest)) if last.at == d.base.users && last.remove == 0 => (rest, &last.insert),
        _ => (&d.users[..], &[]),
    }
}

/// Old and new entries of a multiset: what to remove, what to add.
fn diff<T: Ord + Copy>(mut old: Vec<T>, mut new: Vec<T>) -> (Vec<T>, Vec<T>) {
    old.sort_unstable();
    new.sort_unstable();
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                gone.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                gone.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                came.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (gone, came)
}

/// A team's (user, team) entries, as `Indexed::new` lists them.
fn team_entries(t: &TeamRec) -> Vec<u32> {
    std::iter::once(t.owner)
        .chain(t.members.iter().copied().filter(|&m| m != t.owner))
        .collect()
}

/// A [`Remap`] read in blocks of rows: where a block lies between the
/// splices, every row in it moves by the same shift — one add per row
/// instead of a search of the splices (every grant's row is renumbered
/// when a delta inserts or removes grants: half a million of them).
struct Shifts<'a> {
    remap: &'a Remap,
    len: u32,
    /// Per block: `Some(shift)` when the whole block moves by it.
    blocks: Vec<Option<i64>>,
}

const BLOCK: u32 = 256;

impl<'a> Shifts<'a> {
    fn new(remap: &'a Remap, len: u32) -> Self {
        let blocks = (0..len.div_ceil(BLOCK))
            .map(|b| remap.uniform_shift(b * BLOCK, ((b + 1) * BLOCK).min(len) - 1))
            .collect();
        Shifts { remap, len, blocks }
    }

    fn get(&self, i: u32) -> Option<u32> {
        if i >= self.len {
            return self.remap.get(i);
        }
        match self.blocks.get((i / BLOCK) as usize) {
            Some(Some(s)) => u32::try_from(i64::from(i) + s).ok(),
            _ => self.remap.get(i),
        }
    }
}

impl Indexed {
    /// The base table lengths this index was built from.
    fn lens(&self) -> TableLens {
        let mut lens = TableLens::of(&self.body);
        lens.grants = self.grant_count() as u32;
        lens
    }

    fn plan(&self, d: &DeltaBody, removed: &[GrantRec]) -> Result<Plan, PatchError> {
        let b = &self.body;
        if self.view.is_some() {
            return Err(PatchError::NotInPlace("a principal's view"));
        }
        // The strings and users the delta appends are in the tables
        // already (`patch`).
        let mut lens = self.lens();
        lens.strings = d.base.strings;
        lens.users = d.base.users;
        if lens != d.base {
            return Err(DeltaError::apply(
                "(all)",
                "the base's tables are not the lengths the delta was made from",
            )
            .into());
        }
        d.appends_in_place().map_err(PatchError::NotInPlace)?;
        if d.domain != b.domain {
            return Err(PatchError::NotInPlace("the domain organization"));
        }

        let (replaced, new_users) = appended_users(d);
        let mut names = std::collections::HashSet::new();
        for u in new_users {
            // A new name is found by the lookup once added: it must not
            // be there already (two users of one name).
            let name = b.str(u.username);
            if name.is_empty()
                || !names.insert(name)
                || crate::facts::Facts::user(self, name).is_some()
            {
                return Err(PatchError::NotInPlace("a user's name taken"));
            }
            integrity::check_user(b, u)?;
        }
        let mut users = Vec::new();
        for (i, u) in in_place("users", replaced, d.base.users as usize)? {
            // The username lookup is not edited: a renamed user is a
            // full load.
            if u.username != b.users[i as usize].username {
                return Err(PatchError::NotInPlace("a username"));
            }
            integrity::check_user(b, u)?;
            users.push((i, u.clone()));
        }

        let mut groups: BTreeMap<u32, GroupRec> = in_place("groups", &d.groups, b.groups.len())?
            .into_iter()
            .map(|(i, g)| (i, g.clone()))
            .collect();
        for e in &d.group_members {
            let Some(base) = b.groups.get(e.row as usize) else {
                return Err(DeltaError::apply("group_members", "no such group").into());
            };
            let g = groups.entry(e.row).or_insert_with(|| base.clone());
            g.members = apply_splices("group_members", &g.members, &e.splices, |&p| Some(p))?;
        }
        for g in groups.values() {
            integrity::check_group(b, g)?;
        }

        let mut teams: BTreeMap<u32, TeamRec> = BTreeMap::new();
        for (i, t) in in_place("teams", &d.teams, b.teams.len())? {
            if t.id != b.teams[i as usize].id {
                return Err(PatchError::NotInPlace("a team's id"));
            }
            teams.insert(i, t.clone());
        }
        for e in &d.team_members {
            let Some(base) = b.teams.get(e.row as usize) else {
                return Err(DeltaError::apply("team_members", "no such team").into());
            };
            let t = teams.entry(e.row).or_insert_with(|| base.clone());
            t.members = apply_splices("team_members", &t.members, &e.splices, |&u| Some(u))?;
        }
        for t in teams.values() {
            integrity::check_team(b, t)?;
        }

        let api_keys = if d.api_keys.is_empty() {
            None
        } else {
            for s in &d.api_keys {
                for k in &s.insert {
                    integrity::check_api_key(b, k)?;
                }
            }
            Some(apply_splices("api_keys", &b.api_keys, &d.api_keys, |k| {
                Some(k.clone())
            })?)
        };
        let permissions = if d.permissions.is_empty() {
            None
        } else {
            for s in &d.permissions {
                for p in &s.insert {
                    integrity::check_permission(b, p)?;
                }
            }
            Some(apply_splices(
                "permissions",
                &b.permissions,
                &d.permissions,
                |p| Some(*p),
            )?)
        };

        let grant_rows = Remap::new("grants", &d.grants, d.base.grants)?;
        let removing: usize = d.grants.iter().map(|s| s.remove as usize).sum();
        if removed.len() != removing {
            return Err(DeltaError::apply(
                "grants",
                "the grants given as removed are not the ones the delta removes",
            )
            .into());
        }
        let mut grants_removed = Vec::with_capacity(removing);
        let mut grants_added = Vec::new();
        let mut removed = removed.iter();
        let mut shift = 0i64;
        for s in &d.grants {
            for row in s.at..s.at + s.remove {
                let Some(g) = removed.next() else { break };
                let (lists, k) = self.grants.of(g.principal);
                let found = lists
                    .tags(k)
                    .binary_search(&row)
                    .ok()
                    .and_then(|at| lists.get(k).get(at))
                    .is_some_and(|h| {
                        *h == Grant {
                            role: g.role,
                            on: g.on,
                        }
                    });
                if !found {
                    return Err(DeltaError::apply(
                        "grants",
                        "a grant given as removed is not the base's grant at that row",
                    )
                    .into());
                }
                grants_removed.push((g.principal, row));
            }
            for (k, g) in s.insert.iter().enumerate() {
                integrity::check_grant(b, g)?;
                let row = i64::from(s.at) + shift + k as i64;
                let row = u32::try_from(row)
                    .map_err(|_| DeltaError::apply("grants", "a row number out of range"))?;
                grants_added.push((row, *g));
            }
            shift += s.insert.len() as i64 - i64::from(s.remove);
        }
        Ok(Plan {
            users,
            new_users: new_users.to_vec(),
            groups,
            teams,
            api_keys,
            permissions,
            grants_removed,
            grants_added,
            grant_rows,
        })
    }

    /// Applies `d` in place; `removed` are the base's grants at the rows
    /// the delta removes, in row order. On error nothing has changed.
    pub(crate) fn patch(&mut self, d: &DeltaBody, removed: &[GrantRec]) -> Result<(), PatchError> {
        if self.lens() != d.base {
            return Err(DeltaError::apply(
                "(all)",
                "the base's tables are not the lengths the delta was made from",
            )
            .into());
        }
        // Strings and users appended first, so that the rows the delta
        // brings (a new user's grants, memberships, keys) are checked
        // against them; taken back if the plan is refused.
        let strings = (self.body.strings.blob.len(), self.body.strings.ends.len());
        let users = self.body.users.len();
        if self.view.is_none() && d.appends_in_place().is_ok() {
            self.body.users.extend(appended_users(d).1.iter().cloned());
            for text in d.strings.iter().flat_map(|s| &s.insert) {
                self.body.strings.blob.push_str(text);
                let Ok(end) = u32::try_from(self.body.strings.blob.len()) else {
                    self.body.strings.blob.truncate(strings.0);
                    self.body.strings.ends.truncate(strings.1);
                    return Err(
                        DeltaError::apply("strings", "the string table outgrows 4 GiB").into(),
                    );
                };
                self.body.strings.ends.push(end);
            }
        }
        let plan = match self.plan(d, removed) {
            Ok(p) => p,
            Err(e) => {
                self.body.strings.blob.truncate(strings.0);
                self.body.strings.ends.truncate(strings.1);
                self.body.users.truncate(users);
                return Err(e);
            }
        };
        for (k, u) in plan.new_users.iter().enumerate() {
            if u.admin_role == Some(AdminRole::Owner) {
                self.owners += 1;
            }
            self.add_user((users + k) as u32);
        }
        for (i, u) in plan.users {
            let old = &mut self.body.users[i as usize];
            let owner = |u: &UserRec| u.admin_role == Some(AdminRole::Owner);
            match (owner(old), owner(&u)) {
                (true, false) => self.owners -= 1,
                (false, true) => self.owners += 1,
                _ => {}
            }
            *old = u;
        }
        for (g, new) in plan.groups {
            let old = &self.body.groups[g as usize];
            let (gone, came) = diff(old.members.clone(), new.members.clone());
            for m in gone {
                match m {
                    PrincipalRef::User(u) => self.user_groups.remove_sorted(u, g),
                    PrincipalRef::Service(s) => self.service_groups.remove_sorted(s, g),
                    PrincipalRef::Group(_) => false,
                };
            }
            for m in came {
                match m {
                    PrincipalRef::User(u) => self.user_groups.insert_sorted(u, g),
                    PrincipalRef::Service(s) => self.service_groups.insert_sorted(s, g),
                    PrincipalRef::Group(_) => {}
                }
            }
            self.body.groups[g as usize] = new;
        }
        for (t, new) in plan.teams {
            let old = &self.body.teams[t as usize];
            let (gone, came) = diff(team_entries(old), team_entries(&new));
            for u in gone {
                self.user_teams.remove_sorted(u, t);
            }
            for u in came {
                self.user_teams.insert_sorted(u, t);
            }
            let objects = self.body.objects.iter().any(
                |o| matches!(o.parent, portcullis_snapshots::body::NodeRef::Team(x) if x == t),
            );
            self.team_occupied[t as usize] = objects || new.members.iter().any(|&m| m != new.owner);
            self.body.teams[t as usize] = new;
        }
        if let Some(keys) = plan.api_keys {
            self.body.api_keys = keys;
            self.api_keys = api_key_table(&self.body);
        }
        if let Some(permissions) = plan.permissions {
            self.body.permissions = permissions;
            let b = &self.body;
            self.permissions = ByPrincipal::build(b, b.permissions.iter().map(|p| p.principal));
        }
        for (p, row) in plan.grants_removed {
            let (lists, k) = self.grants.of_mut(p);
            if let Ok(at) = lists.tags(k).binary_search(&row) {
                lists.remove(k, at);
            }
        }
        if !plan.grant_rows.is_identity() {
            let shifts = Shifts::new(&plan.grant_rows, d.base.grants);
            for lists in [
                &mut self.grants.users,
                &mut self.grants.services,
                &mut self.grants.groups,
            ] {
                // Holes are renumbered too: harmless, and cheaper than
                // telling them apart.
                for tag in lists.tags_mut() {
                    if let Some(row) = shifts.get(*tag)
                        && row != *tag
                    {
                        *tag = row;
                    }
                }
            }
        }
        for (row, g) in plan.grants_added {
            let (lists, k) = self.grants.of_mut(g.principal);
            let at = lists.tags(k).partition_point(|&r| r < row);
            lists.insert(
                k,
                at,
                Grant {
                    role: g.role,
                    on: g.on,
                },
                row,
            );
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Users may have moved organization, teams changed: the tree
            // for views is built again when next needed.
            self.tree = std::sync::OnceLock::new();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Shifts;
    use portcullis_snapshots::delta::{Remap, Splice};

    #[test]
    fn shifts_by_block_agree_with_the_remap() {
        let len = 5_000u32;
        let cases: Vec<Vec<Splice<u8>>> = vec![
            vec![],
            vec![Splice {
                at: 10,
                remove: 1,
                insert: vec![],
            }],
            vec![
                Splice {
                    at: 10,
                    remove: 1,
                    insert: vec![],
                },
                Splice {
                    at: 300,
                    remove: 0,
                    insert: vec![1],
                },
            ],
            vec![
                Splice {
                    at: 0,
                    remove: 0,
                    insert: vec![1, 2],
                },
                Splice {
                    at: 256,
                    remove: 3,
                    insert: vec![1],
                },
                Splice {
                    at: 511,
                    remove: 1,
                    insert: vec![1, 2, 3],
                },
                Splice {
                    at: 4_999,
                    remove: 1,
                    insert: vec![],
                },
                Splice {
                    at: 5_000,
                    remove: 0,
                    insert: vec![9],
                },
            ],
            vec![Splice {
                at: 700,
                remove: 2,
                insert: vec![1, 2],
            }],
        ];
        for splices in cases {
            let remap = Remap::new("t", &splices, len).unwrap_or_else(|e| panic!("{e}"));
            let shifts = Shifts::new(&remap, len);
            for i in 0..len + 3 {
                assert_eq!(shifts.get(i), remap.get(i), "row {i} of {splices:?}");
            }
        }
    }
}
