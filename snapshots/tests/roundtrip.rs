//! Property: directory source → snapshot → decode → source is the identity,
//! for random directories that use every field of the format.

use portcullis_snapshots::source::*;
use portcullis_snapshots::vocabulary::*;
use portcullis_snapshots::{decode, encode};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// A random directory that validates, touching every optional field.
fn random_directory(seed: u64, n: usize) -> Directory {
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
            status: pick(rng, &statuses),
            allow_login: i == 0 || rng.random_bool(0.8),
            email_verified: rng.random_bool(0.8),
            sso: rng.random_bool(0.3),
            expires_at: maybe_time(rng),
            last_login: maybe_time(rng),
            start_page: maybe(rng, "home"),
            admin_role,
            sp_role: rng
                .random_bool(0.2)
                .then(|| pick(rng, &[SpRole::DashboardAdministrator, SpRole::ReportViewer])),
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
    let n_roles = rng.random_range(0..=3);
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn source_to_snapshot_and_back_is_identity(seed in any::<u64>(), n in 1usize..12, created in any::<i64>()) {
        let dir = random_directory(seed, n);
        let body = compile(&dir).map_err(|p| TestCaseError::fail(format!("{p:#?}")))?;
        let revision = dir.revision.unwrap_or(7);
        let bytes = encode(&body, revision, created).unwrap();
        let snap = decode(&bytes).unwrap();
        prop_assert_eq!(snap.header.revision, revision);
        prop_assert_eq!(snap.header.created_at, created);
        prop_assert_eq!(&snap.body, &body);
        let back = decompile(&snap.body, dir.revision);
        prop_assert_eq!(&back, &dir);
        // Encoding is deterministic: the same directory, the same bytes.
        prop_assert_eq!(encode(&compile(&back).unwrap(), revision, created).unwrap(), bytes);
    }

    #[test]
    fn json_text_round_trips_through_the_parser(seed in any::<u64>(), n in 1usize..8) {
        let dir = random_directory(seed, n);
        let text = serde_json::to_string_pretty(&dir).unwrap();
        let (parsed, _) = build(&text).map_err(|p| TestCaseError::fail(p.to_string()))?;
        prop_assert_eq!(parsed, dir);
    }
}

#[test]
fn example_directory_round_trips() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.json"))
        .unwrap();
    let (dir, body) = build(&text).unwrap();
    let snap = decode(&encode(&body, 1, 0).unwrap()).unwrap();
    assert_eq!(decompile(&snap.body, dir.revision), dir);
}
