//! What a delta holds — per table, the splices from the base's rows to
//! the target's — and applying it to a decoded body.

use serde::{Deserialize, Serialize};

use crate::body::{
    ApiKeyRec, Body, CatalogRec, CustomRoleRec, EnvRec, GrantRec, GroupRec, ObjectRec, OrgRec,
    PermissionRec, PrincipalRef, ServiceAccountRec, StringTable, TeamRec, UserRec,
};

use super::error::DeltaError;
use super::renumber::{Maps, Renumber};
use super::splice::{self, Remap, Splice};

/// A change to the member list of the group or team at `row` (its index in
/// the target), after its members are renumbered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEdit<T> {
    /// The group's or team's index in the target.
    pub row: u32,
    /// The edits of its member list.
    pub splices: Vec<Splice<T>>,
}

/// Table lengths of the base, checked before anything is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableLens {
    /// Strings.
    pub strings: u32,
    /// Organizations.
    pub orgs: u32,
    /// Environments.
    pub envs: u32,
    /// Catalogs.
    pub catalogs: u32,
    /// Objects.
    pub objects: u32,
    /// Users.
    pub users: u32,
    /// Service accounts.
    pub service_accounts: u32,
    /// API keys.
    pub api_keys: u32,
    /// Groups.
    pub groups: u32,
    /// Teams.
    pub teams: u32,
    /// Custom roles.
    pub custom_roles: u32,
    /// Grants.
    pub grants: u32,
    /// Permissions.
    pub permissions: u32,
}

impl TableLens {
    /// The lengths of `body`'s tables.
    pub fn of(body: &Body) -> TableLens {
        let n = |len: usize| len as u32;
        TableLens {
            strings: n(body.strings.len()),
            orgs: n(body.orgs.len()),
            envs: n(body.envs.len()),
            catalogs: n(body.catalogs.len()),
            objects: n(body.objects.len()),
            users: n(body.users.len()),
            service_accounts: n(body.service_accounts.len()),
            api_keys: n(body.api_keys.len()),
            groups: n(body.groups.len()),
            teams: n(body.teams.len()),
            custom_roles: n(body.custom_roles.len()),
            grants: n(body.grants.len()),
            permissions: n(body.permissions.len()),
        }
    }
}

/// The edits of every table, in body order (postcard, FORMAT.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaBody {
    /// The base's table lengths.
    pub base: TableLens,
    /// The string table.
    pub strings: Vec<Splice<String>>,
    /// The target's domain organization.
    pub domain: u32,
    /// Organizations.
    pub orgs: Vec<Splice<OrgRec>>,
    /// Environments.
    pub envs: Vec<Splice<EnvRec>>,
    /// Catalogs.
    pub catalogs: Vec<Splice<CatalogRec>>,
    /// Objects.
    pub objects: Vec<Splice<ObjectRec>>,
    /// Users.
    pub users: Vec<Splice<UserRec>>,
    /// Service accounts.
    pub service_accounts: Vec<Splice<ServiceAccountRec>>,
    /// API keys.
    pub api_keys: Vec<Splice<ApiKeyRec>>,
    /// Groups.
    pub groups: Vec<Splice<GroupRec>>,
    /// Group memberships changed.
    pub group_members: Vec<MemberEdit<PrincipalRef>>,
    /// Teams.
    pub teams: Vec<Splice<TeamRec>>,
    /// Team memberships changed.
    pub team_members: Vec<MemberEdit<u32>>,
    /// Custom roles.
    pub custom_roles: Vec<Splice<CustomRoleRec>>,
    /// Grants.
    pub grants: Vec<Splice<GrantRec>>,
    /// Permissions.
    pub permissions: Vec<Splice<PermissionRec>>,
}

impl DeltaBody {
    /// Rows removed and inserted (member edits count their members), for
    /// `snapshot diff` and logs.
    pub fn edits(&self) -> (usize, usize) {
        fn count<T>(s: &[Splice<T>]) -> (usize, usize) {
            s.iter().fold((0, 0), |(r, i), s| {
                (r + s.remove as usize, i + s.insert.len())
            })
        }
        fn members<T>(m: &[MemberEdit<T>]) -> (usize, usize) {
            m.iter()
                .map(|e| count(&e.splices))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        }
        [
            count(&self.strings),
            count(&self.orgs),
            count(&self.envs),
            count(&self.catalogs),
            count(&self.objects),
            count(&self.users),
            count(&self.service_accounts),
            count(&self.api_keys),
            count(&self.groups),
            members(&self.group_members),
            count(&self.teams),
            members(&self.team_members),
            count(&self.custom_roles),
            count(&self.grants),
            count(&self.permissions),
        ]
        .into_iter()
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    fn maps(&self, b: &TableLens) -> Result<Maps, DeltaError> {
        Ok(Maps {
            strings: Remap::new("strings", &self.strings, b.strings)?,
            orgs: Remap::new("orgs", &self.orgs, b.orgs)?,
            envs: Remap::new("envs", &self.envs, b.envs)?,
            catalogs: Remap::new("catalogs", &self.catalogs, b.catalogs)?,
            objects: Remap::new("objects", &self.objects, b.objects)?,
            users: Remap::new("users", &self.users, b.users)?,
            services: Remap::new(
                "service_accounts",
                &self.service_accounts,
                b.service_accounts,
            )?,
            groups: Remap::new("groups", &self.groups, b.groups)?,
            teams: Remap::new("teams", &self.teams, b.teams)?,
            roles: Remap::new("custom_roles", &self.custom_roles, b.custom_roles)?,
        })
    }
}

/// Applies `delta` to `base`: the target's body. Refused, with nothing
/// changed, when the edits do not fit the base.
pub fn apply(base: &Body, delta: &DeltaBody) -> Result<Body, DeltaError> {
    if TableLens::of(base) != delta.base {
        return Err(DeltaError::apply(
            "(all)",
            "the base's tables are not the lengths the delta was made from",
        ));
    }
    let m = delta.maps(&delta.base)?;
    // API keys and grants are referred to by nothing: their remaps are
    // only checked.
    Remap::new("api_keys", &delta.api_keys, delta.base.api_keys)?;
    Remap::new("grants", &delta.grants, delta.base.grants)?;
    Remap::new("permissions", &delta.permissions, delta.base.permissions)?;
    let old_strings: Vec<String> = (0..base.strings.len())
        .map(|i| base.strings.get(crate::body::Str(i as u32)).to_string())
        .collect();
    let strings = splice::apply("strings", &old_strings, &delta.strings, |s| Some(s.clone()))?;
    let mut table = StringTable::default();
    for s in &strings {
        table.blob.push_str(s);
        let end = u32::try_from(table.blob.len())
            .map_err(|_| DeltaError::apply("strings", "the string table outgrows 4 GiB"))?;
        table.ends.push(end);
    }
    let mut groups = splice::apply("groups", &base.groups, &delta.groups, |r| r.renumber(&m))?;
    for e in &delta.group_members {
        let g = groups
            .get_mut(e.row as usize)
            .ok_or_else(|| DeltaError::apply("group_members", "no such group"))?;
        g.members = splice::apply("group_members", &g.members, &e.splices, |&p| Some(p))?;
    }
    let mut teams = splice::apply("teams", &base.teams, &delta.teams, |r| r.renumber(&m))?;
    for e in &delta.team_members {
        let t = teams
            .get_mut(e.row as usize)
            .ok_or_else(|| DeltaError::apply("team_members", "no such team"))?;
        t.members = splice::apply("team_members", &t.members, &e.splices, |&u| Some(u))?;
    }
    Ok(Body {
        strings: table,
        domain: delta.domain,
        orgs: splice::apply("orgs", &base.orgs, &delta.orgs, |r| r.renumber(&m))?,
        envs: splice::apply("envs", &base.envs, &delta.envs, |r| r.renumber(&m))?,
        catalogs: splice::apply("catalogs", &base.catalogs, &delta.catalogs, |r| {
            r.renumber(&m)
        })?,
        objects: splice::apply("objects", &base.objects, &delta.objects, |r| r.renumber(&m))?,
        users: splice::apply("users", &base.users, &delta.users, |r| r.renumber(&m))?,
        service_accounts: splice::apply(
            "service_accounts",
            &base.service_accounts,
            &delta.service_accounts,
            |r| r.renumber(&m),
        )?,
        api_keys: splice::apply("api_keys", &base.api_keys, &delta.api_keys, |r| {
            r.renumber(&m)
        })?,
        groups,
        teams,
        custom_roles: splice::apply(
            "custom_roles",
            &base.custom_roles,
            &delta.custom_roles,
            |r| r.renumber(&m),
        )?,
        grants: splice::apply("grants", &base.grants, &delta.grants, |r| r.renumber(&m))?,
        permissions: splice::apply("permissions", &base.permissions, &delta.permissions, |r| {
            r.renumber(&m)
        })?,
    })
}

/// Applies `delta` to `body` in place, when it is a delta that edits in
/// place (`DeltaBody::appends_in_place`: no row of a table others refer to
/// inserted or removed but users and strings appended at the end): rows
/// replaced one for one, member lists edited, strings and users appended,
/// and API keys, grants and permissions — which nothing refers to —
/// spliced. Its cost follows the change, not the directory (save moving
/// the rows after a removed or inserted grant). Refused, with `body`
/// unchanged, when the delta is of another kind or does not fit.
pub fn patch(body: &mut Body, delta: &DeltaBody) -> Result<(), DeltaError> {
    if TableLens::of(body) != delta.base {
        return Err(DeltaError::apply(
            "(all)",
            "the base's tables are not the lengths the delta was made from",
        ));
    }
    delta
        .appends_in_place()
        .map_err(|what| DeltaError::apply(what, "this delta cannot be applied in place"))?;
    if delta.domain != body.domain {
        return Err(DeltaError::apply(
            "domain",
            "this delta cannot be applied in place",
        ));
    }
    // Checked whole before anything changes.
    Remap::new("users", &delta.users, delta.base.users)?;
    Remap::new("groups", &delta.groups, delta.base.groups)?;
    Remap::new("teams", &delta.teams, delta.base.teams)?;
    Remap::new("api_keys", &delta.api_keys, delta.base.api_keys)?;
    Remap::new("grants", &delta.grants, delta.base.grants)?;
    Remap::new("permissions", &delta.permissions, delta.base.permissions)?;
    /// The member lists `edits` make, each from its row as the delta's
    /// row splices leave it.
    fn edited<R, M: Copy>(
        table: &'static str,
        rows: &[R],
        splices: &[Splice<R>],
        edits: &[MemberEdit<M>],
        members: fn(&R) -> &Vec<M>,
    ) -> Result<Vec<(usize, Vec<M>)>, DeltaError> {
        let mut out = Vec::with_capacity(edits.len());
        for e in edits {
            let row = e.row as usize;
            let base = splices
                .iter()
                .find_map(|s| {
                    (row >= s.at as usize && row < (s.at + s.remove) as usize)
                        .then(|| s.insert.get(row - s.at as usize))
                        .flatten()
                })
                .or_else(|| rows.get(row))
                .ok_or_else(|| DeltaError::apply(table, "no such row"))?;
            out.push((
                row,
                splice::apply(table, members(base), &e.splices, |&m| Some(m))?,
            ));
        }
        Ok(out)
    }
    let groups = edited(
        "group_members",
        &body.groups,
        &delta.groups,
        &delta.group_members,
        |g| &g.members,
    )?;
    let teams = edited(
        "team_members",
        &body.teams,
        &delta.teams,
        &delta.team_members,
        |t| &t.members,
    )?;
    fn replace<T: Clone>(rows: &mut [T], splices: &[Splice<T>]) {
        for s in splices {
            for (k, r) in s.insert.iter().enumerate() {
                if let Some(slot) = rows.get_mut(s.at as usize + k) {
                    *slot = r.clone();
                }
            }
        }
    }
    fn splice_rows<T: Clone>(rows: &mut Vec<T>, splices: &[Splice<T>]) {
        // Last first: each splice's rows are still at their old indices.
        for s in splices.iter().rev() {
            let at = s.at as usize;
            rows.splice(at..at + s.remove as usize, s.insert.iter().cloned());
        }
    }
    let appended: Vec<&String> = delta.strings.iter().flat_map(|s| &s.insert).collect();
    // Checked before anything changes.
    let grown = body.strings.blob.len() + appended.iter().map(|t| t.len()).sum::<usize>();
    if u32::try_from(grown).is_err() {
        return Err(DeltaError::apply(
            "strings",
            "the string table outgrows 4 GiB",
        ));
    }
    for text in appended {
        body.strings.blob.push_str(text);
        let end = u32::try_from(body.strings.blob.len())
            .map_err(|_| DeltaError::apply("strings", "the string table outgrows 4 GiB"))?;
        body.strings.ends.push(end);
    }
    for s in &delta.users {
        if s.remove == 0 {
            body.users.extend(s.insert.iter().cloned());
        } else {
            replace(&mut body.users, std::slice::from_ref(s));
        }
    }
    replace(&mut body.groups, &delta.groups);
    replace(&mut body.teams, &delta.teams);
    for (row, members) in groups {
        if let Some(g) = body.groups.get_mut(row) {
            g.members = members;
        }
    }
    for (row, members) in teams {
        if let Some(t) = body.teams.get_mut(row) {
            t.members = members;
        }
    }
    splice_rows(&mut body.api_keys, &delta.api_keys);
    splice_rows(&mut body.grants, &delta.grants);
    splice_rows(&mut body.permissions, &delta.permissions);
    Ok(())
}
