//! Deltas: the change from one snapshot to the next, instead of the whole
//! next snapshot.
//!
//! A delta names the snapshot it applies to (base revision and body
//! SHA-256) and the one it makes (target revision, creation time and body
//! SHA-256), and holds, table by table, the [`Splice`]s that turn the
//! base's body into the target's: rows removed, rows inserted, rows
//! changed in place; every row it leaves alone is carried over with its
//! references renumbered. A group's or a team's changed membership is a
//! splice of its member list ([`MemberEdit`]), not the whole group.
//! Applying a delta gives exactly the target's body, or an error: the
//! result is checked against the target's hash. Format: `snapshots/FORMAT.md`
//! ("Deltas").

mod between;
mod bytes;
mod compute;
mod format;
mod renumber;
mod splice;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::body::{
    ApiKeyRec, Body, CatalogRec, CustomRoleRec, EnvRec, GrantRec, GroupRec, ObjectRec, OrgRec,
    PermissionRec, PrincipalRef, ServiceAccountRec, StringTable, TeamRec, UserRec,
};
use crate::error::DecodeError;

pub use bytes::{Applied, Layout};
pub use compute::compute;
pub use format::{
    DELTA_HEADER_LEN, DELTA_MAGIC, DELTA_SIGNATURE_CONTEXT, DELTA_VERSION, Delta, DeltaHeader,
    decode_delta, encode_delta, is_delta,
};
pub use splice::{Remap, Splice, apply as apply_splices};

use renumber::{Maps, Renumber};

/// Why a delta was refused. Whatever is serving keeps serving.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeltaError {
    /// The bytes are not a delta this build reads.
    #[error("not a usable delta: {0}")]
    Format(String),
    /// The delta's body does not match its SHA-256.
    #[error("the delta's body does not match its SHA-256: the file is corrupted; fetch it again")]
    HashMismatch,
    /// The delta applies to another snapshot than the one given.
    #[error(
        "this delta applies to revision {base_revision} ({base_sha256}), not to revision {revision} ({sha256}): apply the full snapshot, or the deltas in between"
    )]
    WrongBase {
        /// The revision the delta applies to.
        base_revision: u64,
        /// Its body SHA-256, hex.
        base_sha256: String,
        /// The revision it was given.
        revision: u64,
        /// Its body SHA-256, hex.
        sha256: String,
    },
    /// The base snapshot itself is refused.
    #[error("the base snapshot is refused: {0}")]
    Base(DecodeError),
    /// The delta's edits do not fit the base (out of range, overlapping,
    /// a kept row pointing at a removed one).
    #[error("the delta does not apply to its base ({table}: {reason})")]
    DoesNotApply {
        /// The table.
        table: &'static str,
        /// What does not fit.
        reason: &'static str,
    },
    /// Applied, the result is not the target: not this delta's base, or a
    /// faulty tool wrote it.
    #[error(
        "applying the delta does not give the snapshot it promises (SHA-256 {got} instead of {want}); install the full snapshot"
    )]
    TargetMismatch {
        /// The SHA-256 promised, hex.
        want: String,
        /// The SHA-256 obtained, hex.
        got: String,
    },
    /// The delta changes tables that other tables refer to by index
    /// (`.0` names which): it cannot be applied to bytes or to a loaded
    /// engine in place. Apply it in full ([`Delta::apply_to`]).
    #[error("this delta cannot be applied in place ({0}); apply it in full")]
    NotInPlace(&'static str),
    /// The result could not be encoded.
    #[error("the result could not be encoded: {0}")]
    Encode(String),
}

impl DeltaError {
    /// The delta does not fit its base: `reason`, in `table`.
    pub fn apply(table: &'static str, reason: &'static str) -> DeltaError {
        DeltaError::DoesNotApply { table, reason }
    }
}

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
