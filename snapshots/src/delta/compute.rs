//! Making a delta from two bodies.
//!
//! Rows are matched by their key — a string by its text, a record by its
//! id (a user by username), a grant or permission by everything it says,
//! resolved to names — in the longest run that keeps both orders; the rows
//! between matches are spliced. The references of a matched row are then
//! renumbered as the splices move their targets; if it still differs from
//! the new row, it is changed in place (a group or team whose only change
//! is its members gets a [`MemberEdit`] instead). The delta is then applied
//! to the old body and compared with the new one: a delta that would not
//! reproduce the target exactly is never written.

use std::collections::HashMap;
use std::hash::Hash;

use crate::body::{Body, Str};

use super::body::{DeltaBody, MemberEdit, TableLens, apply};
use super::error::DeltaError;
use super::renumber::{Maps, Renumber};
use super::splice::{self, Remap, Splice};

/// Keys made unique: the n-th occurrence of a key is its own key.
fn unique<K: Hash + Eq>(keys: &[K]) -> Vec<(&K, u32)> {
    let mut seen: HashMap<&K, u32> = HashMap::with_capacity(keys.len());
    keys.iter()
        .map(|k| {
            let n = seen.entry(k).or_insert(0);
            *n += 1;
            (k, *n)
        })
        .collect()
}

/// One table's alignment.
struct Aligned {
    pairs: Vec<(u32, u32)>,
    old_len: usize,
    new_len: usize,
}

impl Aligned {
    fn of<K: Hash + Eq>(old: &[K], new: &[K]) -> Aligned {
        let (old_len, new_len) = (old.len(), new.len());
        Aligned {
            pairs: splice::align(&unique(old), &unique(new)),
            old_len,
            new_len,
        }
    }

    /// The remap the alignment's splices make (changes in place keep
    /// every index, so they do not alter it).
    fn remap(&self, table: &'static str) -> Result<Remap, DeltaError> {
        let rows = vec![(); self.new_len];
        let s = splice::splices(self.old_len, &rows, &self.pairs, |_, _| true);
        Remap::new(table, &s, self.old_len as u32)
    }

    /// The splices of a table whose rows renumber.
    fn splices<T: Renumber + Clone + PartialEq>(
        &self,
        old: &[T],
        new: &[T],
        m: &Maps,
    ) -> Vec<Splice<T>> {
        splice::splices(self.old_len, new, &self.pairs, |i, j| {
            match (old.get(i as usize), new.get(j as usize)) {
                (Some(o), Some(n)) => o.renumber(m).as_ref() == Some(n),
                _ => false,
            }
        })
    }
}

/// The delta from `old` to `new` (bodies of directory snapshots).
pub fn compute(old: &Body, new: &Body) -> Result<DeltaBody, DeltaError> {
    let texts = |b: &Body| -> Vec<String> {
        (0..b.strings.len())
            .map(|i| b.str(Str(i as u32)).to_string())
            .collect()
    };
    let (old_strings, new_strings) = (texts(old), texts(new));
    let strings = Aligned::of(old_strings.as_slice(), new_strings.as_slice());
    macro_rules! by_id {
        ($table:ident, $field:ident) => {
            Aligned::of(
                &old.$table
                    .iter()
                    .map(|r| old.str(r.$field))
                    .collect::<Vec<_>>(),
                &new.$table
                    .iter()
                    .map(|r| new.str(r.$field))
                    .collect::<Vec<_>>(),
            )
        };
    }
    let orgs = by_id!(orgs, id);
    let envs = by_id!(envs, id);
    let catalogs = by_id!(catalogs, id);
    let objects = by_id!(objects, id);
    let users = by_id!(users, username);
    let services = by_id!(service_accounts, id);
    let api_keys = by_id!(api_keys, id);
    let groups = by_id!(groups, id);
    let teams = by_id!(teams, id);
    let roles = by_id!(custom_roles, id);
    let grant_keys = |b: &Body| -> Vec<String> {
        b.grants
            .iter()
            .map(|g| {
                format!(
                    "{}\0{}\0{}",
                    b.principal_ref(g.principal),
                    b.role_name(g.role),
                    b.node_ref(g.on)
                )
            })
            .collect()
    };
    let grants = Aligned::of(&grant_keys(old), &grant_keys(new));
    let permission_keys = |b: &Body| -> Vec<String> {
        b.permissions
            .iter()
            .map(|p| {
                let org = p
                    .org
                    .and_then(|o| b.orgs.get(o as usize))
                    .map_or("", |o| b.str(o.id));
                format!(
                    "{}\0{:?}\0{:?}\0{}",
                    b.principal_ref(p.principal),
                    p.permission,
                    p.entity,
                    org
                )
            })
            .collect()
    };
    let permissions = Aligned::of(&permission_keys(old), &permission_keys(new));

    let m = Maps {
        strings: strings.remap("strings")?,
        orgs: orgs.remap("orgs")?,
        envs: envs.remap("envs")?,
        catalogs: catalogs.remap("catalogs")?,
        objects: objects.remap("objects")?,
        users: users.remap("users")?,
        services: services.remap("service_accounts")?,
        groups: groups.remap("groups")?,
        teams: teams.remap("teams")?,
        roles: roles.remap("custom_roles")?,
    };

    // Groups and teams: a change of members only is a member edit.
    let mut group_members = Vec::new();
    let group_splices = splice::splices(groups.old_len, &new.groups, &groups.pairs, |i, j| {
        let (Some(o), Some(n)) = (old.groups.get(i as usize), new.groups.get(j as usize)) else {
            return false;
        };
        let Some(o) = o.renumber(&m) else {
            return false;
        };
        if o == *n {
            return true;
        }
        if (&o.id, &o.name, &o.code, &o.description) != (&n.id, &n.name, &n.code, &n.description) {
            return false;
        }
        group_members.push(MemberEdit {
            row: j,
            splices: member_splices(&o.members, &n.members),
        });
        true
    });
    let mut team_members = Vec::new();
    let team_splices = splice::splices(teams.old_len, &new.teams, &teams.pairs, |i, j| {
        let (Some(o), Some(n)) = (old.teams.get(i as usize), new.teams.get(j as usize)) else {
            return false;
        };
        let Some(o) = o.renumber(&m) else {
            return false;
        };
        if o == *n {
            return true;
        }
        if (&o.id, &o.name, o.org, o.owner) != (&n.id, &n.name, n.org, n.owner) {
            return false;
        }
        team_members.push(MemberEdit {
            row: j,
            splices: member_splices(&o.members, &n.members),
        });
        true
    });

    let delta = DeltaBody {
        base: TableLens::of(old),
        strings: strings.splices(&old_strings, &new_strings, &m),
        domain: new.domain,
        orgs: orgs.splices(&old.orgs, &new.orgs, &m),
        envs: envs.splices(&old.envs, &new.envs, &m),
        catalogs: catalogs.splices(&old.catalogs, &new.catalogs, &m),
        objects: objects.splices(&old.objects, &new.objects, &m),
        users: users.splices(&old.users, &new.users, &m),
        service_accounts: services.splices(&old.service_accounts, &new.service_accounts, &m),
        api_keys: api_keys.splices(&old.api_keys, &new.api_keys, &m),
        groups: group_splices,
        group_members,
        teams: team_splices,
        team_members,
        custom_roles: roles.splices(&old.custom_roles, &new.custom_roles, &m),
        grants: grants.splices(&old.grants, &new.grants, &m),
        permissions: permissions.splices(&old.permissions, &new.permissions, &m),
    };
    // Never write a delta that does not give the target exactly.
    if apply(old, &delta)? != *new {
        return Err(DeltaError::apply(
            "(all)",
            "the delta made does not reproduce the new snapshot (a bug: ship the full snapshot)",
        ));
    }
    Ok(delta)
}

/// Splices turning a (renumbered) member list into the new one.
fn member_splices<T: Hash + Eq + Clone>(old: &[T], new: &[T]) -> Vec<Splice<T>> {
    let pairs = splice::align(&unique(old), &unique(new));
    splice::splices(old.len(), new, &pairs, |_, _| true)
}
