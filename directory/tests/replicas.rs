//! Several directory-service replicas on one PostgreSQL database (the
//! tests' server, `scripts/postgres`): all accept writes; a replica whose
//! head is behind catches up before it decides, so revisions stay
//! contiguous and no write is lost or applied twice; each follows the
//! others' commits between writes; the publishing lease is held by one at
//! a time and fences each publication.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_directory::operation::Operation;
use portcullis_directory::service::{Change, Provenance, Service};
use portcullis_directory::storage::{Fence, Lease, Postgres};
use portcullis_snapshots::source;

mod common;

fn api() -> Provenance {
    Provenance {
        via: "api",
        ..Provenance::default()
    }
}

fn invite(name: &str) -> Change {
    let user = serde_json::from_value(serde_json::json!({
        "username": name, "email": format!("{name}@acme.example"), "organization": "acme",
    }))
    .unwrap();
    Change {
        operations: vec![Operation::InviteUser { user }],
        bulk: false,
    }
}

/// A new database holding the example, and `n` replicas on it.
fn replicas(dir: &Path, n: usize) -> (String, Vec<Arc<Service>>) {
    let url = common::postgres_database(dir);
    let first = Service::open(Box::new(Postgres::open(&url).unwrap())).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/examples/acme.json"),
    )
    .unwrap();
    let mut d = source::build(&text).unwrap().0;
    d.revision = None;
    first.import(&d, "operator", false, &api()).unwrap();
    let mut all = vec![Arc::new(first)];
    for _ in 1..n {
        all.push(Arc::new(
            Service::open(Box::new(Postgres::open(&url).unwrap())).unwrap(),
        ));
    }
    (url, all)
}

#[test]
fn replicas_on_one_database_all_accept_writes_and_lose_none() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, rs) = replicas(tmp.path(), 3);
    assert!(rs.iter().all(|s| s.shared()));
    // Three writers, one per replica, at once.
    let threads: Vec<_> = rs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..15)
                    .map(|j| {
                        let name = format!("r{i}-{j}");
                        let c = s.write("user/olivia", &invite(&name), &api()).unwrap();
                        (c.revision, name)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(u64, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    // Every answered revision is its own: no two writes share one.
    let revisions: Vec<u64> = acked.iter().map(|(r, _)| *r).collect();
    assert_eq!(revisions, (2..=46).collect::<Vec<u64>>());
    // Each replica follows to the same revision and the same directory.
    for s in &rs {
        s.follow().unwrap();
        let head = s.head().unwrap();
        assert_eq!(head.revision, 46);
        for (_, name) in &acked {
            assert!(head.engine.user_row(name).is_some(), "{name} missing");
        }
    }
    let a = rs[0].head().unwrap();
    for s in &rs[1..] {
        assert_eq!(s.head().unwrap().directory, a.directory);
    }
    // The log: contiguous, one entry per write.
    let log = rs[1].changes(0, 1000).unwrap();
    assert_eq!(
        log.iter().map(|e| e.revision).collect::<Vec<_>>(),
        (1..=46).collect::<Vec<u64>>()
    );
}

#[test]
fn a_replica_behind_decides_at_the_latest_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, rs) = replicas(tmp.path(), 2);
    // A deactivates dave; B, which has not followed, is asked a write of
    // dave's: decided at A's revision, not its own.
    rs[0]
        .write(
            "user/olivia",
            &Change {
                operations: vec![Operation::DeactivateUser {
                    username: "dave".into(),
                }],
                bulk: false,
            },
            &api(),
        )
        .unwrap();
    assert_eq!(rs[1].head().unwrap().revision, 1);
    // dave (deactivated at A) may not act through B.
    let r = rs[1].write(
        "user/dave",
        &Change {
            operations: vec![Operation::UpdateUser {
                username: "dave".into(),
                set: serde_json::from_value(serde_json::json!({"locale": "fr-FR"})).unwrap(),
            }],
            bulk: false,
        },
        &api(),
    );
    assert!(
        matches!(&r, Err(portcullis_directory::error::ServiceError::Denied { reason, .. }) if reason == "account_deactivated"),
        "{r:?}"
    );
    assert_eq!(rs[1].head().unwrap().revision, 2);
    // If-Match against a revision B had not seen is stale, not lost.
    let r = rs[1].write(
        "user/olivia",
        &invite("late"),
        &Provenance {
            if_match: Some(1),
            ..api()
        },
    );
    assert!(
        matches!(
            r,
            Err(portcullis_directory::error::ServiceError::Stale { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn one_replica_holds_the_publishing_lease_and_fences_each_publication() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _rs) = replicas(tmp.path(), 1);
    let every = Duration::from_millis(20);
    let a = Lease::start(&url, every).unwrap();
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(20), "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait("a takes the lease", &|| a.held());
    let b = Lease::start(&url, every).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(a.held() && !b.held(), "two holders");
    assert_eq!(a.fence(5), Fence::Publish);
    assert_eq!(
        a.fence(5),
        Fence::Publish,
        "the same revision, again by its holder"
    );
    assert_eq!(a.fence(4), Fence::Published, "never below one published");
    assert_eq!(b.fence(6), Fence::NotLeading);
    // The holder goes (its connection with it): the other takes over.
    drop(a);
    wait("b takes over", &|| b.held());
    assert_eq!(b.fence(5), Fence::Publish);
    assert_eq!(b.fence(6), Fence::Publish);
}

#[test]
fn a_large_change_is_streamed_and_reads_back_the_same() {
    // Over a thousand rows go by COPY: an import, then one that changes,
    // adds and removes entities.
    use portcullis_snapshots::generate::{GenerateParams, generate};
    let tmp = tempfile::tempdir().unwrap();
    let url = common::postgres_database(tmp.path());
    let params = GenerateParams {
        users: 2_000,
        groups: 20,
        orgs: 3,
        envs: 4,
        catalogs: 20,
        grants: 3_000,
        seed: 7,
    };
    let mut d = generate(params);
    d.users[5].phone = Some("tab\there, back\\slash, new\nline".into());
    let s = Service::open(Box::new(Postgres::open(&url).unwrap())).unwrap();
    s.import(&d, "operator", false, &api()).unwrap();
    let mut next = d.clone();
    // Changed, added and removed rows, each more than a thousand.
    for u in next.users.iter_mut().take(1_200) {
        u.locale = Some("xx-XX".into());
    }
    let template = next.users[10].clone();
    for i in 0..1_100 {
        let mut u = template.clone();
        u.username = format!("extra-{i}");
        u.email = format!("extra-{i}@example.com");
        u.admin_role = None;
        next.users.push(u);
    }
    let mut keep = false;
    next.grants.retain(|_| {
        keep = !keep;
        keep
    });
    let c = s.import(&next, "operator", false, &api()).unwrap();
    assert_eq!(c.revision, 2);
    drop(s);
    let again = Service::open(Box::new(Postgres::open(&url).unwrap())).unwrap();
    let head = again.head().unwrap();
    assert_eq!(head.revision, 2);
    let mut want = next;
    want.revision = None;
    let mut got = head.directory.clone();
    got.revision = None;
    assert_eq!(got, want, "what was streamed reads back otherwise");
}

#[test]
fn a_replica_makes_the_others_changes_in_place_as_they_made_them() {
    use portcullis_directory::service::Step;
    let tmp = tempfile::tempdir().unwrap();
    let (_, rs) = replicas(tmp.path(), 2);
    let (a, b) = (&rs[0], &rs[1]);
    let write = |s: &Service, actor: &str, op: Operation| {
        s.write(
            actor,
            &Change {
                operations: vec![op],
                bulk: false,
            },
            &api(),
        )
        .unwrap()
    };
    let same = |what: &str| {
        b.follow().unwrap();
        let (x, y) = (a.head().unwrap(), b.head().unwrap());
        assert_eq!(x.revision, y.revision, "{what}");
        assert_eq!(x.directory, y.directory, "{what}: the directories differ");
        assert_eq!(x.approvals, y.approvals, "{what}: the approvals differ");
        assert_eq!(x.settings, y.settings, "{what}: the settings differ");
        assert!(
            x.engine.logical_state() == y.engine.logical_state(),
            "{what}: the engines differ"
        );
        y
    };
    // An everyday change: B edits its engine in place, as A did.
    write(
        a,
        "user/olivia",
        Operation::DeactivateUser {
            username: "dave".into(),
        },
    );
    let y = same("a deactivation");
    assert!(
        matches!(y.step, Step::Delta(_)),
        "B read the directory whole"
    );
    // An invitation with its new strings, a grant, a setting.
    a.write("user/olivia", &invite("newcomer"), &api()).unwrap();
    assert!(matches!(same("an invitation").step, Step::Delta(_)));
    write(
        a,
        "user/olivia",
        Operation::AddGrant {
            grant: portcullis_snapshots::source::Grant {
                principal: "user/newcomer".into(),
                role: "reader".into(),
                on: "org/acme".into(),
            },
        },
    );
    assert!(matches!(same("a grant").step, Step::Delta(_)));
    // An API key: its secret was A's answer alone; B holds the same hash.
    let made = write(
        a,
        "user/sam",
        Operation::CreateApiKey {
            id: "replicated".into(),
            name: None,
            expires_at: None,
        },
    );
    assert!(made.operations[0].secret.is_some());
    same("an API key");
    // An administrator's new address, held for its holder (seed 003):
    // the approval is B's to show too.
    write(
        a,
        "user/olivia",
        Operation::UpdateUser {
            username: "adam".into(),
            set: serde_json::from_value(serde_json::json!({"email": "adam.new@acme.example"}))
                .unwrap(),
        },
    );
    let y = same("a held email change");
    assert_eq!(y.approvals.len(), 1);
    assert!(matches!(y.step, Step::Delta(_)));
    // Several at once, while B was not looking.
    for i in 0..5 {
        a.write("user/olivia", &invite(&format!("burst{i}")), &api())
            .unwrap();
    }
    assert!(matches!(same("a burst").step, Step::Delta(_)));
}
