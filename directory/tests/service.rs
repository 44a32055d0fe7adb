//! The directory service's writer over a real SQLite file: every seed
//! rule about managing accounts holds through a write, refusals lose
//! nothing, and what was answered survives a reopen.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::path::Path;

use portcullis_directory::error::ServiceError;
use portcullis_directory::operation::{Operation, UserChanges};
use portcullis_directory::service::{Change, Committed, Provenance, Service};
use portcullis_directory::storage::Sqlite;

mod common;
use portcullis_snapshots::source::{self, Directory, Grant};

/// The example directory, without the revision its file names (the
/// service numbers revisions itself).
fn example() -> Directory {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/examples/acme.json"),
    )
    .unwrap();
    let mut d = source::build(&text).unwrap().0;
    d.revision = None;
    d
}

fn open(path: &Path) -> Service {
    Service::open(common::store(path)).unwrap()
}

/// A service holding the example directory at revision 1.
fn service(dir: &tempfile::TempDir) -> Service {
    let s = open(&dir.path().join("directory.db"));
    let c = s.import(&example(), "operator", false, &api()).unwrap();
    assert_eq!(c.revision, 1);
    s
}

fn api() -> Provenance {
    Provenance {
        via: "api",
        ..Provenance::default()
    }
}

fn write(s: &Service, actor: &str, ops: Vec<Operation>) -> Result<Committed, ServiceError> {
    s.write(
        actor,
        &Change {
            operations: ops,
            bulk: false,
        },
        &api(),
    )
}

fn deactivate(u: &str) -> Operation {
    Operation::DeactivateUser { username: u.into() }
}

fn denied(r: Result<Committed, ServiceError>, reason: &str) {
    match r {
        Err(ServiceError::Denied { reason: got, .. }) => assert_eq!(got, reason),
        other => panic!("expected a denial {reason}, got {other:?}"),
    }
}

fn user(s: &Service, u: &str) -> portcullis_snapshots::source::User {
    let head = s.head().unwrap();
    head.directory
        .users
        .iter()
        .find(|x| x.username == u)
        .unwrap()
        .clone()
}

fn status(s: &Service, u: &str) -> String {
    serde_json::to_value(user(s, u).status)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn seed_003_administrators_cannot_administer_owners() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    denied(
        write(&s, "user/adam", vec![deactivate("olivia")]),
        "administrator_over_owner",
    );
    // Within his subtree he may.
    let c = write(&s, "user/adam", vec![deactivate("rhea")]).unwrap();
    assert_eq!(c.revision, 2);
    assert_eq!(c.operations[0].decisions[0].reason, "admin_role");
    assert_eq!(status(&s, "rhea"), "deactivated");
}

#[test]
fn seed_000_nobody_edits_their_own_expiry() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let own = Operation::SetUserExpiry {
        username: "rhea".into(),
        expires_at: None,
    };
    denied(write(&s, "user/rhea", vec![own.clone()]), "own_expiry");
    write(&s, "user/olivia", vec![own]).unwrap();
}

#[test]
fn seed_003_a_super_administrator_is_deactivated_only_by_support() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    denied(
        write(&s, "user/olivia", vec![deactivate("sam")]),
        "super_administrator_support_only",
    );
    assert_eq!(status(&s, "sam"), "active");
    write(&s, "support", vec![deactivate("sam")]).unwrap();
    assert_eq!(status(&s, "sam"), "deactivated");
}

#[test]
fn seed_000_only_super_administrators_create_api_keys_and_a_key_acts_as_its_creator() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let key = |id: &str| Operation::CreateApiKey {
        id: id.into(),
        name: None,
        expires_at: None,
    };
    denied(write(&s, "user/adam", vec![key("adam-key")]), "no_grant");
    let c = write(&s, "user/sam", vec![key("sam-ci")]).unwrap();
    let secret = c.operations[0].secret.clone().unwrap();
    assert!(secret.starts_with("pk_") && secret.len() == 67);
    let head = s.head().unwrap();
    let stored = head
        .directory
        .api_keys
        .iter()
        .find(|k| k.id == "sam-ci")
        .unwrap();
    assert_eq!(stored.created_by, "user/sam");
    // Only the hash is kept, in the directory and in the log.
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
    assert_eq!(stored.sha256, sha);
    let log = serde_json::to_string(&s.changes(0, 100).unwrap()).unwrap();
    assert!(!log.contains(&secret));
    // The key acts as sam: sam's rights, and sam's limits.
    let as_key = format!("apikey/{sha}");
    let c = write(&s, &as_key, vec![deactivate("dave")]).unwrap();
    assert!(
        c.operations[0].decisions[0].message.contains("user/sam"),
        "{c:?}"
    );
    denied(
        write(
            &s,
            &as_key,
            vec![Operation::SetUserExpiry {
                username: "sam".into(),
                expires_at: None,
            }],
        ),
        "own_expiry",
    );
    // Revoked: dead at once.
    write(
        &s,
        "user/sam",
        vec![Operation::RevokeApiKey {
            id: "sam-ci".into(),
        }],
    )
    .unwrap();
    assert!(write(&s, &as_key, vec![deactivate("carol")]).is_err());
}

#[test]
fn seed_003_bulk_operations_skip_administrator_accounts() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let c = s
        .write(
            "user/olivia",
            &Change {
                operations: vec![deactivate("rhea"), deactivate("dave")],
                bulk: true,
            },
            &api(),
        )
        .unwrap();
    assert_eq!(c.operations[0].outcome, "skipped");
    assert!(
        c.operations[0]
            .skipped_because
            .as_deref()
            .unwrap()
            .contains("administrator")
    );
    assert_eq!(c.operations[1].outcome, "applied");
    assert_eq!(status(&s, "rhea"), "active");
    assert_eq!(status(&s, "dave"), "deactivated");
}

#[test]
fn seed_002_the_sole_owner_cannot_be_removed() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    denied(
        write(
            &s,
            "user/olivia",
            vec![Operation::DeleteUser {
                username: "tom".into(),
            }],
        ),
        "sole_owner",
    );
    // Nor dropped from a team they own by editing the team.
    let head = s.head().unwrap();
    assert!(head.directory.users.iter().any(|u| u.username == "tom"));
}

#[test]
fn seed_002_team_roles_stay_inside_their_team() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    // lee's user-manager role within team/noc reaches nina (a member) …
    write(&s, "user/lee", vec![deactivate("nina")]).unwrap();
    // … not dave, who is outside the team.
    denied(write(&s, "user/lee", vec![deactivate("dave")]), "no_grant");
}

#[test]
fn seed_002_notification_only_and_inactive_users_cannot_act() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    denied(
        write(&s, "user/nina", vec![deactivate("dave")]),
        "notification_only",
    );
    denied(
        write(&s, "user/zoe", vec![deactivate("dave")]),
        "account_deactivated",
    );
    // A user deactivated by one write cannot act in the next.
    write(&s, "user/olivia", vec![deactivate("oscar")]).ok();
    write(&s, "user/adam", vec![deactivate("bob")]).unwrap();
    denied(
        write(
            &s,
            "user/bob",
            vec![Operation::ReactivateUser {
                username: "bob".into(),
            }],
        ),
        "account_deactivated",
    );
}

#[test]
fn a_denied_operation_refuses_the_whole_change() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    denied(
        write(
            &s,
            "user/adam",
            vec![deactivate("rhea"), deactivate("olivia")],
        ),
        "administrator_over_owner",
    );
    assert_eq!(status(&s, "rhea"), "active");
    assert_eq!(s.head().unwrap().revision, 1);
    assert_eq!(s.changes(0, 10).unwrap().len(), 1);
}

#[test]
fn an_email_change_needs_verifying_again() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let set = UserChanges {
        email: Some("dave@new.example".into()),
        ..UserChanges::default()
    };
    let c = write(
        &s,
        "user/olivia",
        vec![Operation::UpdateUser {
            username: "dave".into(),
            set,
        }],
    )
    .unwrap();
    assert!(
        c.operations[0]
            .decisions
            .iter()
            .any(|d| d.action == "user:change_email")
    );
    let head = s.head().unwrap();
    let dave = head
        .directory
        .users
        .iter()
        .find(|u| u.username == "dave")
        .unwrap();
    assert!(!dave.email_verified);
}

#[test]
fn an_invalid_post_state_is_refused_with_every_problem() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    // Removing an organization that environments and users belong to.
    let r = write(
        &s,
        "user/olivia",
        vec![Operation::DeleteOrganization { id: "apac".into() }],
    );
    match r {
        Err(ServiceError::Invalid422(problems)) => {
            assert!(problems.len() >= 2, "{problems:?}");
            assert!(problems.iter().all(|p| !p.pointer.is_empty()));
        }
        other => panic!("expected 422, got {other:?}"),
    }
    assert_eq!(s.head().unwrap().revision, 1);
}

#[test]
fn unknown_and_duplicate_targets() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let r = write(
        &s,
        "user/olivia",
        vec![Operation::RemoveGrant {
            grant: Grant {
                principal: "user/dave".into(),
                role: "writer".into(),
                on: "org/acme".into(),
            },
        }],
    );
    assert!(matches!(r, Err(ServiceError::NotFound { .. })), "{r:?}");
    let r = write(
        &s,
        "user/olivia",
        vec![Operation::AddGrant {
            grant: Grant {
                principal: "user/dave".into(),
                role: "reader".into(),
                on: "org/acme".into(),
            },
        }],
    );
    assert!(matches!(r, Err(ServiceError::Exists { .. })), "{r:?}");
    assert_eq!(r.unwrap_err().status(), 409);
}

#[test]
fn a_stale_revision_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let p = Provenance {
        via: "api",
        if_match: Some(1),
        ..Provenance::default()
    };
    let change = Change {
        operations: vec![deactivate("dave")],
        bulk: false,
    };
    assert_eq!(s.write("user/olivia", &change, &p).unwrap().revision, 2);
    let change = Change {
        operations: vec![deactivate("carol")],
        bulk: false,
    };
    let r = s.write("user/olivia", &change, &p);
    assert!(
        matches!(
            r,
            Err(ServiceError::Stale {
                expected: 1,
                current: 2
            })
        ),
        "{r:?}"
    );
}

#[test]
fn a_retried_write_answers_the_same_without_a_second_change() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let p = Provenance {
        via: "api",
        idempotency_key: Some("k-1".into()),
        ..Provenance::default()
    };
    let change = Change {
        operations: vec![deactivate("dave")],
        bulk: false,
    };
    let first = s.write("user/olivia", &change, &p).unwrap();
    let again = s.write("user/olivia", &change, &p).unwrap();
    assert!(again.replayed);
    assert_eq!(again.revision, first.revision);
    assert_eq!(s.head().unwrap().revision, 2);
    // The same key for another request is a mistake, said so.
    let other = Change {
        operations: vec![deactivate("carol")],
        bulk: false,
    };
    assert!(matches!(
        s.write("user/olivia", &other, &p),
        Err(ServiceError::KeyReused(2))
    ));
}

#[test]
fn answered_writes_survive_a_reopen_and_the_log_is_contiguous() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("directory.db");
    {
        let s = service(&d);
        write(&s, "user/olivia", vec![deactivate("dave")]).unwrap();
        write(
            &s,
            "user/sam",
            vec![Operation::CreateApiKey {
                id: "k".into(),
                name: None,
                expires_at: None,
            }],
        )
        .unwrap();
        write(
            &s,
            "user/olivia",
            vec![Operation::AddTeamMember {
                team: "noc".into(),
                username: "sue".into(),
            }],
        )
        .unwrap();
    }
    let s = open(&path);
    let head = s.head().unwrap();
    assert_eq!(head.revision, 4);
    let log = s.changes(0, 100).unwrap();
    assert_eq!(
        log.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(log[1].actor, "user/olivia");
    assert_eq!(
        log[1].decisions[0]["decisions"][0]["action"],
        "user:deactivate"
    );
    // The reopened directory is the one written, in source order.
    let mut expected = example();
    expected
        .users
        .iter_mut()
        .find(|u| u.username == "dave")
        .unwrap()
        .status = portcullis_snapshots::vocabulary::UserStatus::Deactivated;
    expected
        .teams
        .iter_mut()
        .find(|t| t.id == "noc")
        .unwrap()
        .members
        .push("sue".into());
    let mut got = head.directory.without_bookkeeping();
    got.api_keys.retain(|k| k.id != "k");
    got.revision = None;
    expected.revision = None;
    assert_eq!(got, expected);
}

#[test]
fn importing_the_same_directory_twice_is_an_empty_change_and_export_is_the_import() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let again = s.import(&example(), "operator", false, &api()).unwrap();
    assert!(!again.changed);
    assert_eq!(again.revision, 1);
    let mut exported = s.head().unwrap().directory.clone();
    exported.revision = None;
    assert_eq!(exported, example());
    // A reordered, edited directory: the import makes exactly it.
    let mut edited = example();
    edited.users.reverse();
    edited.users.pop();
    edited.grants.swap(0, 1);
    let c = s.import(&edited, "operator", false, &api()).unwrap();
    assert_eq!(c.revision, 2);
    let mut live = s.head().unwrap().directory.clone();
    live.revision = None;
    assert_eq!(live.users, edited.users);
    drop(s);
    let s = open(&d.path().join("directory.db"));
    let mut got = s.head().unwrap().directory.clone();
    got.revision = None;
    assert_eq!(got, edited);
}

#[test]
fn an_import_with_problems_is_refused_whole() {
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let mut bad = example();
    bad.teams[0].owner = "nobody".into();
    bad.grants[0].on = "org/nowhere".into();
    match s.import(&bad, "operator", false, &api()) {
        Err(ServiceError::Invalid422(p)) => assert!(p.len() >= 2, "{p:?}"),
        other => panic!("expected 422, got {other:?}"),
    }
    assert_eq!(s.head().unwrap().revision, 1);
}

#[test]
fn a_second_process_cannot_open_the_database_behind_the_service() {
    if common::on_postgres() {
        // Replicas share a PostgreSQL database by design: the store's
        // tests (directory/tests/replicas.rs) cover them.
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let _s = service(&d);
    match Sqlite::open(&d.path().join("directory.db")).and_then(|mut x| {
        use portcullis_directory::storage::Storage;
        x.load()
    }) {
        Err(portcullis_directory::storage::StorageError::Busy(_)) => {}
        other => panic!("expected busy, got {:?}", other.map(|s| s.revision)),
    }
}

#[test]
fn a_grant_listed_twice_is_kept_twice_and_removed_once_for_all() {
    // The compiler accepts a grant listed twice (the generated benchmark
    // directory has some): an import keeps the directory exactly.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("directory.db");
    let mut twice = example();
    let g = twice.grants[0].clone();
    twice.grants.push(g.clone());
    {
        let s = open(&path);
        s.import(&twice, "operator", false, &api()).unwrap();
    }
    let s = open(&path);
    let mut got = s.head().unwrap().directory.clone();
    got.revision = None;
    assert_eq!(got, twice);
    write(
        &s,
        "user/olivia",
        vec![Operation::RemoveGrant { grant: g.clone() }],
    )
    .unwrap();
    drop(s);
    let s = open(&path);
    assert!(!s.head().unwrap().directory.grants.contains(&g));
}

#[test]
fn seed_000_only_owners_and_super_administrators_configure_sso_and_scim() {
    use portcullis_directory::operation::Setting;
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("directory.db");
    let set = |name, v: serde_json::Value| Operation::SetSetting {
        name,
        value: v.as_object().unwrap().clone(),
    };
    {
        let s = service(&d);
        let sso = set(
            Setting::Sso,
            serde_json::json!({"enabled": true, "metadata_url": "https://idp.example.com/saml"}),
        );
        denied(write(&s, "user/adam", vec![sso.clone()]), "no_grant");
        denied(
            write(
                &s,
                "user/ada",
                vec![set(Setting::Scim, serde_json::json!({"enabled": true}))],
            ),
            "no_grant",
        );
        let c = write(&s, "user/sam", vec![sso]).unwrap();
        assert_eq!(c.revision, 2);
        assert_eq!(c.operations[0].decisions[0].action, "admin:sso");
        write(
            &s,
            "user/olivia",
            vec![set(Setting::Scim, serde_json::json!({"enabled": true}))],
        )
        .unwrap();
        // Setting the same again changes nothing.
        let again = write(
            &s,
            "user/olivia",
            vec![set(Setting::Scim, serde_json::json!({"enabled": true}))],
        )
        .unwrap();
        assert!(!again.changed);
    }
    let s = open(&path);
    let head = s.head().unwrap();
    assert_eq!(head.revision, 3);
    assert_eq!(
        head.settings["sso"]["metadata_url"],
        "https://idp.example.com/saml"
    );
    assert_eq!(head.settings["scim"]["enabled"], true);
}

/// Follows the revisions a listener is told of as the publisher does —
/// deltas patched into its own copy of the body — so that each head can be
/// checked against a full build ([`Follower::agrees`]).
struct Follower {
    body: std::sync::Mutex<Option<(u64, portcullis_snapshots::body::Body)>>,
}

impl portcullis_directory::service::Listener for Follower {
    fn committed(&self, r: &portcullis_directory::service::Revision) {
        use portcullis_directory::service::Step;
        let mut b = self.body.lock().unwrap();
        match (&r.step, b.as_mut()) {
            (Step::Full(body), _) => *b = Some((r.revision, (**body).clone())),
            (Step::Delta(d), Some((at, body))) => {
                assert_eq!(*at + 1, r.revision, "revisions are told in order");
                portcullis_snapshots::delta::patch(body, d).unwrap();
                *at = r.revision;
            }
            (Step::Delta(_), None) => panic!("a delta before any whole revision"),
        }
    }
}

impl Follower {
    fn on(s: &Service) -> std::sync::Arc<Follower> {
        let f = std::sync::Arc::new(Follower {
            body: std::sync::Mutex::new(None),
        });
        s.listen(f.clone()).unwrap();
        f
    }

    /// The head is exactly what a full build gives: its directory is valid
    /// (compiles); the followed body is the compiled one — or, once users
    /// were invited in place (their strings appended rather than interned
    /// in compilation's order), the same directory; and the head's engine,
    /// however the writer made it, is the one loading that body gives.
    fn agrees(&self, s: &Service) {
        let head = s.head().unwrap();
        let mut dir = head.directory.clone();
        dir.revision = None;
        let compiled = source::compile(&dir).unwrap();
        let b = self.body.lock().unwrap();
        let (at, body) = b.as_ref().unwrap();
        assert_eq!(*at, head.revision);
        if body.strings == compiled.strings {
            assert!(
                *body == compiled,
                "revision {at}: the followed body is not the compiled one"
            );
        } else {
            assert!(
                source::decompile(body, None) == dir.without_bookkeeping(),
                "revision {at}: the followed body is not the head's directory"
            );
        }
        let bytes = portcullis_snapshots::encode(body, head.revision, head.created_at).unwrap();
        let loaded = policy_wasm::Engine::load(&bytes).unwrap();
        assert!(
            head.engine.logical_state() == loaded.logical_state(),
            "revision {at}: the engine edited in place is not the one a full load gives"
        );
    }
}

/// A small deterministic generator (no dependency for a test's dice).
struct Dice(u64);

impl Dice {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.next(items.len())])
    }
}

/// A random operation on `dir`: mostly the kinds the writer edits in place
/// (status, expiry, roles, flags, keys, members, grants, permissions),
/// some that must compile (a new user, a new email, a deleted group), and
/// some that compilation refuses (a role at the wrong level, an owner
/// outside the domain).
fn random_op(dir: &Directory, dice: &mut Dice, n: usize) -> Option<Operation> {
    use portcullis_snapshots::source::{PermissionGrant, Timestamp};
    use portcullis_snapshots::vocabulary::{AdminRole, EntityType, Permission, SpRole};
    let user = dice.pick(&dir.users)?.username.clone();
    let node = || {
        let mut all: Vec<String> = dir
            .organizations
            .iter()
            .map(|o| format!("org/{}", o.id))
            .collect();
        all.extend(dir.environments.iter().map(|e| format!("env/{}", e.id)));
        all.extend(dir.catalogs.iter().map(|c| format!("catalog/{}", c.id)));
        all.extend(dir.teams.iter().map(|t| format!("team/{}", t.id)));
        all
    };
    Some(match dice.next(17) {
        0 => deactivate(&user),
        1 => Operation::ReactivateUser { username: user },
        2 => Operation::SetUserExpiry {
            username: user,
            expires_at: (dice.next(2) == 0).then(|| Timestamp(1_800_000_000 + n as i64)),
        },
        3 => Operation::SetAdminRole {
            username: user,
            admin_role: *dice.pick(&[
                None,
                Some(AdminRole::Administrator),
                Some(AdminRole::Owner),
                Some(AdminRole::SuperAdministrator),
            ])?,
        },
        4 => Operation::UpdateUser {
            username: user,
            set: UserChanges {
                sso: Some(dice.next(2) == 0),
                sp_role: dice
                    .pick(&[
                        None,
                        Some(SpRole::DashboardAdministrator),
                        Some(SpRole::ReportViewer),
                    ])?
                    .to_owned(),
                allow_login: (dice.next(4) == 0).then_some(dice.next(2) == 0),
                ..UserChanges::default()
            },
        },
        5 => Operation::RevokeApiKey {
            id: dice.pick(&dir.api_keys)?.id.clone(),
        },
        6 => Operation::AddGroupMember {
            group: dice.pick(&dir.groups)?.id.clone(),
            member: format!("user/{user}"),
        },
        7 => {
            let g = dice.pick(&dir.groups)?;
            Operation::RemoveGroupMember {
                group: g.id.clone(),
                member: dice.pick(&g.members)?.clone(),
            }
        }
        8 => Operation::AddTeamMember {
            team: dice.pick(&dir.teams)?.id.clone(),
            username: user,
        },
        9 => {
            let t = dice.pick(&dir.teams)?;
            Operation::RemoveTeamMember {
                team: t.id.clone(),
                username: dice.pick(&t.members)?.clone(),
            }
        }
        10 | 11 => Operation::AddGrant {
            grant: Grant {
                principal: match dice.next(3) {
                    0 => format!("group/{}", dice.pick(&dir.groups)?.id),
                    _ => format!("user/{user}"),
                },
                role: dice
                    .pick(&["reader", "writer", "admin", "custom_per_catalog"])?
                    .to_string(),
                on: dice.pick(&node())?.clone(),
            },
        },
        12 => Operation::RemoveGrant {
            grant: dice.pick(&dir.grants)?.clone(),
        },
        13 => Operation::AddPermission {
            permission: PermissionGrant {
                principal: format!("user/{user}"),
                permission: Permission::Manage,
                entity: Some(*dice.pick(&[EntityType::Users, EntityType::UserGroups])?),
                on: None,
            },
        },
        14 => Operation::RemovePermission {
            permission: dice.pick(&dir.permissions)?.clone(),
        },
        15 => Operation::UpdateUser {
            username: user,
            set: UserChanges {
                email: Some(format!("changed{n}@example.com")),
                ..UserChanges::default()
            },
        },
        _ => {
            let mut u = dice.pick(&dir.users)?.clone();
            u.username = format!("new{n}");
            u.email = format!("new{n}@example.com");
            u.admin_role = None;
            Operation::InviteUser { user: u }
        }
    })
}

#[test]
fn every_write_gives_exactly_the_engine_a_full_build_gives() {
    // The writer edits its engine in place for the everyday changes and
    // compiles the rest; either way the head must be what compiling and
    // loading the directory gives, and a publisher following the deltas
    // must hold the compiled body — on the example and on random
    // directories, for changes alone and mixed, refused ones in between,
    // and while readers hold the revision before.
    let mut dice = Dice(7);
    let mut directories = vec![example()];
    for seed in 1..=6u64 {
        let mut dir = portcullis_snapshots::generate::random_directory(seed, 40);
        dir.revision = None;
        directories.push(dir);
    }
    let mut in_place = 0;
    for (k, dir) in directories.into_iter().enumerate() {
        let d = tempfile::tempdir().unwrap();
        let s = open(&d.path().join("r.db"));
        s.import(&dir, "operator", false, &api()).unwrap();
        let follower = Follower::on(&s);
        let mut held = None;
        for n in 0..60 {
            let head = s.head().unwrap();
            let ops: Vec<Operation> = (0..1 + dice.next(3))
                .filter_map(|_| random_op(&head.directory, &mut dice, n))
                .collect();
            // Now and then a reader keeps a revision across writes.
            if dice.next(5) == 0 {
                held = Some(head.clone());
            } else if dice.next(3) == 0 {
                held = None;
            }
            drop(head);
            let before = s.head().unwrap().revision;
            if let Ok(c) = write(&s, "support", ops)
                && c.changed
                && c.revision == before + 1
                && matches!(
                    s.head().unwrap().step,
                    portcullis_directory::service::Step::Delta(_)
                )
            {
                in_place += 1;
            }
            follower.agrees(&s);
        }
        drop(held);
        assert!(
            s.head().unwrap().revision > 3,
            "directory {k}: too few writes"
        );
    }
    assert!(in_place > 50, "only {in_place} writes were edited in place");
}

#[test]
fn the_everyday_changes_edit_the_engine_in_place() {
    // Each of these is a delta applied to the writer's engine, not a
    // compilation of the directory (which is what makes a write cost what
    // it changes); the test above checks the result is the compiled one.
    use portcullis_directory::service::Step;
    use portcullis_snapshots::source::{PermissionGrant, Timestamp};
    use portcullis_snapshots::vocabulary::{AdminRole, EntityType, Permission};
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let follower = Follower::on(&s);
    let grant = Grant {
        principal: "user/dave".into(),
        role: "reader".into(),
        on: "org/acme".into(),
    };
    let permission = PermissionGrant {
        principal: "user/dave".into(),
        permission: Permission::Manage,
        entity: Some(EntityType::UserGroups),
        on: None,
    };
    let cases = [
        ("deactivate", vec![deactivate("dave")]),
        (
            "reactivate",
            vec![Operation::ReactivateUser {
                username: "dave".into(),
            }],
        ),
        (
            "expiry",
            vec![Operation::SetUserExpiry {
                username: "carol".into(),
                expires_at: Some(Timestamp(1_900_000_000)),
            }],
        ),
        (
            "administrator role",
            vec![Operation::SetAdminRole {
                username: "carol".into(),
                admin_role: Some(AdminRole::Administrator),
            }],
        ),
        (
            "flags",
            vec![Operation::UpdateUser {
                username: "carol".into(),
                set: UserChanges {
                    sso: Some(true),
                    ..UserChanges::default()
                },
            }],
        ),
        (
            "revoke a key",
            vec![Operation::RevokeApiKey {
                id: "dave-notebook".into(),
            }],
        ),
        (
            "group member",
            vec![Operation::AddGroupMember {
                group: "analysts".into(),
                member: "user/dave".into(),
            }],
        ),
        (
            "team member",
            vec![Operation::RemoveTeamMember {
                team: "noc".into(),
                username: "nina".into(),
            }],
        ),
        (
            "remove a grant",
            vec![Operation::RemoveGrant {
                grant: grant.clone(),
            }],
        ),
        ("add a grant", vec![Operation::AddGrant { grant }]),
        (
            "add a permission",
            vec![Operation::AddPermission {
                permission: permission.clone(),
            }],
        ),
        (
            "remove a permission",
            vec![Operation::RemovePermission { permission }],
        ),
        (
            "invite a user (new strings, appended)",
            vec![Operation::InviteUser {
                user: serde_json::from_value(serde_json::json!({
                    "username": "newcomer",
                    "email": "newcomer@acme.example",
                    "organization": "emea",
                    "name": "New Comer",
                    "timezone": "Europe/London",
                }))
                .unwrap(),
            }],
        ),
        (
            "the new user's grant",
            vec![Operation::AddGrant {
                grant: Grant {
                    principal: "user/newcomer".into(),
                    role: "reader".into(),
                    on: "org/acme".into(),
                },
            }],
        ),
    ];
    for (what, ops) in cases {
        let c = write(&s, "user/olivia", ops).unwrap_or_else(|e| panic!("{what}: {e}"));
        let head = s.head().unwrap();
        assert_eq!(head.revision, c.revision);
        assert!(
            matches!(head.step, Step::Delta(_)),
            "{what} was compiled, not edited in place"
        );
        follower.agrees(&s);
    }
    // A new string is a compilation.
    let c = write(
        &s,
        "user/olivia",
        vec![Operation::UpdateUser {
            username: "carol".into(),
            set: UserChanges {
                phone: Some("+1 555 0199".into()),
                ..UserChanges::default()
            },
        }],
    )
    .unwrap();
    assert_eq!(s.head().unwrap().revision, c.revision);
    assert!(matches!(s.head().unwrap().step, Step::Full(_)));
    follower.agrees(&s);
    // What compilation refuses of a new user is refused, whole, with its
    // place: an email taken (compared case-insensitively), an owner outside
    // the domain, the support principal's name.
    let invite = |v: serde_json::Value| Operation::InviteUser {
        user: serde_json::from_value(v).unwrap(),
    };
    for (what, op) in [
        (
            "a taken email",
            invite(
                serde_json::json!({"username": "twin", "email": "DAVE@acme.example", "organization": "acme"}),
            ),
        ),
        (
            "an owner outside the domain",
            invite(
                serde_json::json!({"username": "boss", "email": "boss@acme.example", "organization": "emea", "admin_role": "owner"}),
            ),
        ),
        (
            "the support principal's name",
            invite(
                serde_json::json!({"username": "Support", "email": "s@acme.example", "organization": "acme"}),
            ),
        ),
    ] {
        let before = s.head().unwrap().revision;
        match write(&s, "user/olivia", vec![op]) {
            Err(ServiceError::Invalid422(problems)) => assert!(!problems.is_empty(), "{what}"),
            other => panic!("{what}: expected 422, got {other:?}"),
        }
        assert_eq!(s.head().unwrap().revision, before, "{what}");
    }
    // And the writer goes on from the head as it was.
    write(&s, "user/olivia", vec![deactivate("pat")]).unwrap();
    assert!(matches!(s.head().unwrap().step, Step::Delta(_)));
    follower.agrees(&s);
}

fn email_of(s: &Service, u: &str) -> (String, bool) {
    let user = user(s, u);
    (user.email, user.email_verified)
}

fn change_email(u: &str, email: &str) -> Operation {
    Operation::UpdateUser {
        username: u.into(),
        set: UserChanges {
            email: Some(email.into()),
            ..UserChanges::default()
        },
    }
}

#[test]
fn seed_003_an_administrators_new_email_waits_for_the_holders_approval() {
    // Seed 003: "Unlike personal accounts, a change to the email address
    // needs to be approved by the account holder."
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("directory.db");
    let id = {
        let s = service(&d);
        let before = email_of(&s, "adam");
        let c = write(
            &s,
            "user/olivia",
            vec![change_email("adam", "adam@new.example")],
        )
        .unwrap();
        assert!(c.changed, "filing the approval is a revision of the log");
        let op = &c.operations[0];
        assert_eq!(op.outcome, "pending_approval");
        let a = op.approval.clone().unwrap();
        assert_eq!(
            (
                a.username.as_str(),
                a.email.as_str(),
                a.requested_by.as_str()
            ),
            ("adam", "adam@new.example", "user/olivia")
        );
        assert_eq!(
            email_of(&s, "adam"),
            before,
            "the account keeps its address"
        );
        // Both ends see it; nobody else does.
        assert_eq!(s.approvals("user/adam"), vec![a.clone()]);
        assert_eq!(s.approvals("user/olivia"), vec![a.clone()]);
        assert!(s.approvals("user/sam").is_empty());
        // Only the holder approves — not the owner who asked.
        denied(
            s.settle("user/olivia", &a.id, true, &api()),
            "not_the_holder",
        );
        denied(s.settle("user/sam", &a.id, true, &api()), "not_the_holder");
        a.id
    };
    // Filed durably: still there after a restart.
    let s = open(&path);
    assert_eq!(s.approvals("user/adam").len(), 1);
    let c = s.settle("user/adam", &id, true, &api()).unwrap();
    assert!(c.changed);
    assert_eq!(email_of(&s, "adam"), ("adam@new.example".into(), false));
    assert!(s.approvals("user/adam").is_empty());
    // Settled once: a second approval finds nothing.
    assert!(matches!(
        s.settle("user/adam", &id, true, &api()),
        Err(ServiceError::NotFound { .. })
    ));
    let log = s.changes(0, 100).unwrap();
    let last = log.last().unwrap();
    assert_eq!(last.actor, "user/adam");
    assert_eq!(last.operations[0]["op"], "update_user");
    assert_eq!(last.operations[0]["username"], "adam");

    // Declined by the holder: nothing changes.
    let c = write(
        &s,
        "user/olivia",
        vec![change_email("adam", "typo@new.example")],
    )
    .unwrap();
    let a = c.operations[0].approval.clone().unwrap();
    s.settle("user/adam", &a.id, false, &api()).unwrap();
    assert_eq!(email_of(&s, "adam").0, "adam@new.example");
    assert!(s.approvals("user/olivia").is_empty());

    // The rest of an operation applies at once; the address waits.
    let c = write(
        &s,
        "user/olivia",
        vec![Operation::UpdateUser {
            username: "adam".into(),
            set: UserChanges {
                email: Some("adam@third.example".into()),
                phone: Some("+44 20 7946 0000".into()),
                ..UserChanges::default()
            },
        }],
    )
    .unwrap();
    assert_eq!(c.operations[0].outcome, "applied");
    assert!(c.operations[0].approval.is_some());
    let head = s.head().unwrap();
    let adam = head
        .directory
        .users
        .iter()
        .find(|u| u.username == "adam")
        .unwrap();
    assert_eq!(adam.phone.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(adam.email, "adam@new.example");

    // A personal account's address changes at once, and so does one's own.
    let c = write(
        &s,
        "user/olivia",
        vec![change_email("dave", "dave@new.example")],
    )
    .unwrap();
    assert_eq!(c.operations[0].outcome, "applied");
    assert!(c.operations[0].approval.is_none());
    assert_eq!(email_of(&s, "dave"), ("dave@new.example".into(), false));
    // (adam's address is unverified since its change: he acts no more
    // until he verifies it — seed 000.)
    denied(
        write(
            &s,
            "user/adam",
            vec![change_email("adam", "adam@own.example")],
        ),
        "email_unverified",
    );
    let c = write(&s, "user/ada", vec![change_email("ada", "ada@own.example")]).unwrap();
    assert!(c.operations[0].approval.is_none());
    assert_eq!(email_of(&s, "ada").0, "ada@own.example");
}

#[test]
fn a_listener_that_joins_after_users_were_appended_follows_the_deltas_after_it() {
    // A listener told of a head the writer edited in place starts from
    // the engine's own body (strings in the order they were appended),
    // so the deltas after it apply to it — a compilation's body would
    // number the strings otherwise.
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let invite = |name: &str| Operation::InviteUser {
        user: serde_json::from_value(serde_json::json!({
            "username": name,
            "email": format!("{name}@acme.example"),
            "organization": "acme",
            "name": format!("{name} Newcomer"),
        }))
        .unwrap(),
    };
    write(&s, "user/olivia", vec![invite("first")]).unwrap();
    assert!(matches!(
        s.head().unwrap().step,
        portcullis_directory::service::Step::Delta(_)
    ));
    let late = Follower::on(&s);
    late.agrees(&s);
    for ops in [
        vec![invite("second")],
        vec![Operation::AddGrant {
            grant: Grant {
                principal: "user/second".into(),
                role: "reader".into(),
                on: "org/acme".into(),
            },
        }],
        vec![deactivate("first")],
    ] {
        write(&s, "user/olivia", ops).unwrap();
        late.agrees(&s);
    }
}

#[test]
fn seed_003_an_approval_is_decided_again_when_the_holder_approves() {
    // The rights of whoever asked are asked again at approval: a
    // requester deactivated since (seed 003: only support deactivates a
    // super administrator) no longer changes the address.
    let d = tempfile::tempdir().unwrap();
    let s = service(&d);
    let c = write(
        &s,
        "user/sam",
        vec![change_email("adam", "adam@new.example")],
    )
    .unwrap();
    let a = c.operations[0].approval.clone().unwrap();
    write(&s, "support", vec![deactivate("sam")]).unwrap();
    denied(
        s.settle("user/adam", &a.id, true, &api()),
        "account_deactivated",
    );
    assert_eq!(email_of(&s, "adam").0, "adam@acme.example");
    // Still pending: the holder may decline it.
    s.settle("user/adam", &a.id, false, &api()).unwrap();
    assert!(s.approvals("user/adam").is_empty());
}
