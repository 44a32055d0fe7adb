//! A deterministic, realistic large directory for benchmarks and
//! differential tests: the same parameters always give the same directory
//! (ChaCha8 from a seed, stable across platforms and versions).
//!
//! API key secrets are `pk_<seed>_<index>` so benchmarks can present them.
#![allow(
    clippy::indexing_slicing,
    reason = "the benchmark generator indexes the tables it has just built; it is not on a request or load path"
)]

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::source::*;
use crate::vocabulary::*;

/// Sizes of the generated directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerateParams {
    /// Users.
    pub users: usize,
    /// Groups (about 50 members each).
    pub groups: usize,
    /// Organizations, the domain included.
    pub orgs: usize,
    /// Environments.
    pub envs: usize,
    /// Catalogs.
    pub catalogs: usize,
    /// Role grants.
    pub grants: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for GenerateParams {
    /// The benchmark directory of the issues: 100k users, 2k groups,
    /// 10 orgs, 100 environments, 5k catalogs, 500k grants.
    fn default() -> Self {
        GenerateParams {
            users: 100_000,
            groups: 2_000,
            orgs: 10,
            envs: 100,
            catalogs: 5_000,
            grants: 500_000,
            seed: 1,
        }
    }
}

/// The secret of generated API key `i` (its SHA-256 is in the directory).
pub fn api_key_secret(seed: u64, i: usize) -> String {
    format!("pk_{seed}_{i}")
}

const OBJECT_KINDS: [&str; 3] = ["table", "dashboard", "view"];
const TEAM_RESOURCE_KINDS: [&str; 3] = ["site", "vpn", "billing"];

/// Generates a directory that validates, with every kind of record.
pub fn generate(p: GenerateParams) -> Directory {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let orgs = p.orgs.max(1);
    let envs = p.envs.max(1);
    let catalogs = p.catalogs.max(1);
    let users = p.users.max(2);
    let mut d = Directory {
        format: SOURCE_FORMAT,
        revision: Some(1),
        ..Directory::default()
    };

    for i in 0..orgs {
        d.organizations.push(Organization {
            id: if i == 0 {
                "domain".into()
            } else {
                format!("org-{i}")
            },
            name: Some(if i == 0 {
                "Domain".into()
            } else {
                format!("Organization {i}")
            }),
            parent: (i > 0).then(|| org_id(rng.random_range(0..i))),
        });
    }
    let tiers = [
        EnvTier::Production,
        EnvTier::Staging,
        EnvTier::Development,
        EnvTier::Customer,
    ];
    for i in 0..envs {
        d.environments.push(Environment {
            id: format!("env-{i}"),
            name: None,
            organization: org_id(i % orgs),
            tier: tiers[i % tiers.len()],
        });
    }
    for i in 0..catalogs {
        let external = rng.random_range(0..5) == 0;
        d.catalogs.push(Catalog {
            id: format!("cat-{i}"),
            name: Some(format!("Catalog {i}")),
            environment: format!("env-{}", rng.random_range(0..envs)),
            kind: if external {
                CatalogKind::External
            } else {
                CatalogKind::Internal
            },
            connector: external.then(|| "snowflake".into()),
        });
    }

    for i in 0..users {
        let roll = rng.random_range(0..1000);
        let status = match roll {
            0..=9 => UserStatus::Disabled,
            10..=14 => UserStatus::Banned,
            15..=19 => UserStatus::Deactivated,
            20..=29 => UserStatus::Invited,
            _ => UserStatus::Active,
        };
        let admin_role = match i {
            0 => Some(AdminRole::Owner),
            1 => Some(AdminRole::SuperAdministrator),
            _ if roll >= 995 => Some(AdminRole::Administrator),
            _ => None,
        };
        let org = if i < 2 { 0 } else { rng.random_range(0..orgs) };
        d.users.push(User {
            username: format!("user{i}"),
            name: Some(format!("User {i}")),
            first_name: None,
            last_name: None,
            email: format!("user{i}@example.com"),
            phone: (roll % 3 == 0).then(|| format!("+1555{i:07}")),
            organization: org_id(org),
            timezone: Some("Europe/Paris".into()),
            locale: None,
            status,
            allow_login: i < 2 || rng.random_range(0..100) != 0,
            email_verified: i < 2 || rng.random_range(0..100) < 97,
            sso: roll % 4 == 0,
            expires_at: (rng.random_range(0..20) == 0)
                .then(|| Timestamp(1_700_000_000 + rng.random_range(0..200_000_000))),
            last_login: Some(Timestamp(1_760_000_000 + rng.random_range(0..10_000_000))),
            start_page: None,
            admin_role,
            sp_role: None,
            external_id: None,
            created_at: None,
            updated_at: None,
        });
    }
    let services = (users / 100).max(1);
    for i in 0..services {
        d.service_accounts.push(ServiceAccount {
            id: format!("svc-{i}"),
            name: None,
            description: None,
            organization: org_id(rng.random_range(0..orgs)),
            default_access: if i % 3 == 0 {
                DefaultAccess::None
            } else {
                DefaultAccess::Reader
            },
            status: AccountStatus::Active,
        });
    }
    for i in 0..(users / 50).max(1) {
        d.api_keys.push(ApiKey {
            id: format!("key-{i}"),
            name: None,
            sha256: hex::encode(Sha256::digest(api_key_secret(p.seed, i).as_bytes())),
            created_by: format!("user/user{}", rng.random_range(0..users)),
            created_at: Some(Timestamp(1_750_000_000)),
            expires_at: None,
            revoked: i % 25 == 0,
        });
    }
    for i in 0..p.groups {
        let n = rng.random_range(20..80);
        let mut members: Vec<String> = (0..n)
            .map(|_| {
                if rng.random_range(0..20) == 0 {
                    format!("service/svc-{}", rng.random_range(0..services))
                } else {
                    format!("user/user{}", rng.random_range(0..users))
                }
            })
            .collect();
        members.sort_unstable();
        members.dedup();
        d.groups.push(Group {
            id: format!("group-{i}"),
            name: format!("Group {i}"),
            code: format!("G{i:05}"),
            description: None,
            members,
            organization: None,
            external_id: None,
            created_at: None,
            updated_at: None,
        });
    }
    let teams = (p.groups / 10).max(1);
    for i in 0..teams {
        // Owners must be portal users: walk forward to one with login.
        let mut owner = rng.random_range(0..users);
        while !d.users[owner].allow_login {
            owner = (owner + 1) % users;
        }
        let mut members: Vec<String> = (0..10)
            .map(|_| format!("user{}", rng.random_range(0..users)))
            .collect();
        members.sort_unstable();
        members.dedup();
        d.teams.push(Team {
            id: format!("team-{i}"),
            name: Some(format!("Team {i}")),
            organization: org_id(rng.random_range(0..orgs)),
            owner: format!("user{owner}"),
            members,
        });
        d.objects.push(Object {
            id: format!("team-{i}-{}", TEAM_RESOURCE_KINDS[i % 3]),
            name: None,
            kind: TEAM_RESOURCE_KINDS[i % 3].into(),
            parent: format!("team/team-{i}"),
        });
    }
    for i in 0..catalogs {
        d.objects.push(Object {
            id: format!("cat-{i}-obj"),
            name: None,
            kind: OBJECT_KINDS[i % 3].into(),
            parent: format!("catalog/cat-{i}"),
        });
    }
    let role_scopes: [&[&str]; 4] = [
        &["user:create", "user:update", "user:delete"],
        &[
            "teams:invite-users",
            "teams:remove-users",
            "teams:add-users",
        ],
        &["site:read", "vpn:read", "billing:read"],
        &["site:write", "vpn:write", "user:read"],
    ];
    for (i, scopes) in role_scopes.iter().enumerate() {
        d.custom_roles.push(CustomRole {
            id: format!("role-{i}"),
            name: None,
            description: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        });
    }

    for _ in 0..p.grants {
        let principal = match rng.random_range(0..100) {
            0..=4 if p.groups > 0 => format!("group/group-{}", rng.random_range(0..p.groups)),
            5..=9 => format!("service/svc-{}", rng.random_range(0..services)),
            _ => format!("user/user{}", rng.random_range(0..users)),
        };
        let rw = |rng: &mut ChaCha8Rng| {
            if rng.random_range(0..3) == 0 {
                "writer"
            } else {
                "reader"
            }
        };
        let (role, on) = match rng.random_range(0..100) {
            0..=69 => (
                rw(&mut rng).to_string(),
                format!("catalog/cat-{}", rng.random_range(0..catalogs)),
            ),
            70..=79 => (
                rw(&mut rng).to_string(),
                format!("env/env-{}", rng.random_range(0..envs)),
            ),
            80..=84 => (
                "custom_per_catalog".into(),
                format!("env/env-{}", rng.random_range(0..envs)),
            ),
            85..=86 => (rw(&mut rng).to_string(), org_ref(rng.random_range(0..orgs))),
            87 => (
                "custom_per_environment".into(),
                org_ref(rng.random_range(0..orgs)),
            ),
            88 => ("admin".into(), org_ref(rng.random_range(0..orgs))),
            89..=94 => (
                rw(&mut rng).to_string(),
                format!("object/cat-{}-obj", rng.random_range(0..catalogs)),
            ),
            _ => (
                format!("role/role-{}", rng.random_range(0..role_scopes.len())),
                format!("team/team-{}", rng.random_range(0..teams)),
            ),
        };
        d.grants.push(Grant {
            principal,
            role,
            on,
        });
    }
    for i in 0..(users / 20) {
        let entity = EntityType::ALL[i % EntityType::ALL.len()];
        let permission = if entity.manage_only() || rng.random_range(0..2) == 0 {
            Permission::Manage
        } else {
            Permission::View
        };
        d.permissions.push(PermissionGrant {
            principal: format!("user/user{}", rng.random_range(0..users)),
            permission,
            entity: Some(entity),
            on: (i % 2 == 0).then(|| org_ref(rng.random_range(0..orgs))),
        });
    }
    d
}

fn org_id(i: usize) -> String {
    if i == 0 {
        "domain".into()
    } else {
        format!("org-{i}")
    }
}

fn org_ref(i: usize) -> String {
    format!("org/{}", org_id(i))
}

const NAMES: [&str; 5] = ["Zoë Ünal", "名前", "Olivia O'Brien", "🚀 launch", "plain"];

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

fn maybe(rng: &mut ChaCha8Rng, s: impl Into<String>) -> Option<String> {
    rng.random_bool(0.5).then(|| s.into())
}

fn maybe_name(rng: &mut ChaCha8Rng) -> Option<String> {
    let name = pick(rng, &NAMES);
    maybe(rng, name)
}

fn maybe_time(rng: &mut ChaCha8Rng) -> Option<Timestamp> {
    rng.random_bool(0.5)
        .then(|| Timestamp(rng.random_range(-1_000_000_000..4_000_000_000)))
}

/// Users a benchmark may change as an owner without tripping a rule that
/// no grant overrides: active, able to sign in, no administrator role.
pub fn ordinary_users(d: &Directory) -> Vec<String> {
    d.users
        .iter()
        .filter(|u| u.admin_role.is_none() && u.status == UserStatus::Active && u.allow_login)
        .map(|u| u.username.clone())
        .collect()
}

/// A small random directory that validates and uses every field of the
/// format (optional fields set at random, unicode names, every role at
/// every level it exists): the input of the property tests.
pub fn random_directory(seed: u64, n: usize) -> Directory {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let mut d = Directory {
        format: 1,
        revision: rng.random_bool(0.5).then(|| rng.random_range(0..u64::MAX)),
        ..Directory::default()
    };
    let n_orgs = rng.random_range(1..=n);
    for i in 0..n_orgs {
        d.organizations.push(Organization {
            id: format!("o{i}"),
            name: maybe_name(rng),
            parent: (i > 0).then(|| format!("o{}", rng.random_range(0..i))),
        });
    }
    let tiers = [
        EnvTier::Production,
        EnvTier::Staging,
        EnvTier::Development,
        EnvTier::Customer,
        EnvTier::Other,
    ];
    for i in 0..rng.random_range(0..=n) {
        d.environments.push(Environment {
            id: format!("e{i}"),
            name: maybe(rng, "Env"),
            organization: format!("o{}", rng.random_range(0..n_orgs)),
            tier: pick(rng, &tiers),
        });
    }
    if !d.environments.is_empty() {
        for i in 0..rng.random_range(0..=n) {
            let external = rng.random_bool(0.5);
            d.catalogs.push(Catalog {
                id: format!("c{i}"),
                name: maybe_name(rng),
                environment: format!("e{}", rng.random_range(0..d.environments.len())),
                kind: if external {
                    CatalogKind::External
                } else {
                    CatalogKind::Internal
                },
                connector: maybe(rng, "snowflake"),
            });
        }
    }
    let statuses = [
        UserStatus::Invited,
        UserStatus::Active,
        UserStatus::Disabled,
        UserStatus::Deactivated,
        UserStatus::Banned,
    ];
    let n_users = rng.random_range(1..=n);
    for i in 0..n_users {
        let org = rng.random_range(0..n_orgs);
        let admin_role = match rng.random_range(0..4) {
            0 if org == 0 => Some(pick(
                rng,
                &[AdminRole::Owner, AdminRole::SuperAdministrator],
            )),
            1 => Some(AdminRole::Administrator),
            _ => None,
        };
        d.users.push(User {
            username: format!("u{i}"),
            name: maybe_name(rng),
            first_name: maybe(rng, "First"),
            last_name: maybe(rng, "Last"),
            email: format!("u{i}@example.com"),
            phone: maybe(rng, "+1 555 0100"),
            organization: format!("o{org}"),
            timezone: maybe(rng, "Europe/Paris"),
            locale: maybe(rng, "fr-FR"),
            // Mostly active accounts, so rules beyond "inactive" are reached.
            status: if rng.random_bool(0.6) {
                UserStatus::Active
            } else {
                pick(rng, &statuses)
            },
            allow_login: i == 0 || rng.random_bool(0.9),
            email_verified: rng.random_bool(0.9),
            sso: rng.random_bool(0.3),
            expires_at: maybe_time(rng),
            last_login: maybe_time(rng),
            start_page: maybe(rng, "home"),
            admin_role,
            sp_role: rng
                .random_bool(0.2)
                .then(|| pick(rng, &[SpRole::DashboardAdministrator, SpRole::ReportViewer])),
            external_id: None,
            created_at: None,
            updated_at: None,
        });
    }
    let n_svc = rng.random_range(0..=n);
    for i in 0..n_svc {
        d.service_accounts.push(ServiceAccount {
            id: format!("s{i}"),
            name: maybe(rng, "Bot"),
            description: maybe_name(rng),
            organization: format!("o{}", rng.random_range(0..n_orgs)),
            default_access: pick(rng, &[DefaultAccess::Reader, DefaultAccess::None]),
            status: pick(rng, &[AccountStatus::Active, AccountStatus::Disabled]),
        });
    }
    for i in 0..rng.random_range(0..=n) {
        d.api_keys.push(ApiKey {
            id: format!("k{i}"),
            name: maybe(rng, "key"),
            sha256: format!("{i:064x}"),
            created_by: format!("user/u{}", rng.random_range(0..n_users)),
            created_at: maybe_time(rng),
            expires_at: maybe_time(rng),
            revoked: rng.random_bool(0.2),
        });
    }
    let n_groups = rng.random_range(0..=n);
    for i in 0..n_groups {
        let mut members: Vec<String> = (0..n_users)
            .filter(|_| rng.random_bool(0.3))
            .map(|u| format!("user/u{u}"))
            .collect();
        members.extend(
            (0..n_svc)
                .filter(|_| rng.random_bool(0.3))
                .map(|s| format!("service/s{s}")),
        );
        d.groups.push(Group {
            id: format!("g{i}"),
            name: format!("Group {i}"),
            code: format!("G{i}"),
            description: maybe(rng, "desc"),
            members,
            organization: None,
            external_id: None,
            created_at: None,
            updated_at: None,
        });
    }
    // u0 always has login, so it can own teams.
    for i in 0..rng.random_range(0..=n) {
        d.teams.push(Team {
            id: format!("t{i}"),
            name: maybe(rng, "Team"),
            organization: format!("o{}", rng.random_range(0..n_orgs)),
            owner: "u0".into(),
            members: (1..n_users)
                .filter(|_| rng.random_bool(0.4))
                .map(|u| format!("u{u}"))
                .collect(),
        });
    }
    let mut parents: Vec<String> = d
        .catalogs
        .iter()
        .map(|c| format!("catalog/{}", c.id))
        .collect();
    parents.extend(d.teams.iter().map(|t| format!("team/{}", t.id)));
    if !parents.is_empty() {
        for i in 0..rng.random_range(0..=n) {
            d.objects.push(Object {
                id: format!("x{i}"),
                name: maybe(rng, "Obj"),
                kind: pick(rng, &["table", "site", "vpn"]).into(),
                parent: parents[rng.random_range(0..parents.len())].clone(),
            });
        }
    }
    let scopes = [
        "user:create",
        "user:delete",
        "teams:invite-users",
        "site:read",
        "vpn:write",
    ];
    let n_roles = rng.random_range(0..=4);
    for i in 0..n_roles {
        d.custom_roles.push(CustomRole {
            id: format!("r{i}"),
            name: maybe(rng, "Role"),
            description: maybe(rng, "d"),
            scopes: scopes
                .iter()
                .filter(|_| rng.random_bool(0.5))
                .map(|s| s.to_string())
                .collect(),
        });
    }
    let mut principals: Vec<String> = (0..n_users).map(|u| format!("user/u{u}")).collect();
    principals.extend((0..n_svc).map(|s| format!("service/s{s}")));
    principals.extend((0..n_groups).map(|g| format!("group/g{g}")));
    for _ in 0..rng.random_range(0..=3 * n) {
        let principal = principals[rng.random_range(0..principals.len())].clone();
        let (role, on) = match rng.random_range(0..5) {
            0 => (
                pick(
                    rng,
                    &["admin", "writer", "reader", "custom_per_environment"],
                )
                .to_string(),
                format!("org/o{}", rng.random_range(0..n_orgs)),
            ),
            1 if !d.environments.is_empty() => (
                pick(rng, &["writer", "reader", "custom_per_catalog"]).to_string(),
                format!("env/e{}", rng.random_range(0..d.environments.len())),
            ),
            2 if !d.catalogs.is_empty() => (
                pick(rng, &["writer", "reader"]).to_string(),
                format!("catalog/c{}", rng.random_range(0..d.catalogs.len())),
            ),
            3 if !d.objects.is_empty() => (
                pick(rng, &["writer", "reader"]).to_string(),
                format!("object/x{}", rng.random_range(0..d.objects.len())),
            ),
            4 if n_roles > 0 && !d.teams.is_empty() => (
                format!("role/r{}", rng.random_range(0..n_roles)),
                format!("team/t{}", rng.random_range(0..d.teams.len())),
            ),
            _ => ("reader".to_string(), "org/o0".to_string()),
        };
        d.grants.push(Grant {
            principal,
            role,
            on,
        });
    }
    for _ in 0..rng.random_range(0..=n) {
        let principal = principals[rng.random_range(0..principals.len())].clone();
        let entity = pick(rng, &EntityType::ALL);
        let (permission, entity) = match rng.random_range(0..4) {
            0 => (
                pick(
                    rng,
                    &[
                        Permission::SuperAdmin,
                        Permission::PlatformAccess,
                        Permission::ViewAllPipelineData,
                    ],
                ),
                None,
            ),
            1 if !entity.manage_only() => (Permission::View, Some(entity)),
            _ => (Permission::Manage, Some(entity)),
        };
        let on = rng
            .random_bool(0.5)
            .then(|| format!("org/o{}", rng.random_range(0..n_orgs)));
        d.permissions.push(PermissionGrant {
            principal,
            permission,
            entity,
            on,
        });
    }
    d
}
