//! Faults of the parts around the writer: a full store refuses writes
//! whole and recovers, and a store directory that refuses the upload
//! delays publication without a gap.
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

use portcullis_directory::error::ServiceError;
use portcullis_directory::operation::Operation;
use portcullis_directory::publish::{Destinations, Publisher};
use portcullis_directory::service::{Change, Provenance, Service};
use portcullis_directory::storage::{Sqlite, StorageError};

mod common;
use portcullis_gateway::manifest::Manifest;
use portcullis_snapshots::source::{self, Directory};

fn example() -> Directory {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/examples/acme.json"),
    )
    .unwrap();
    let mut d = source::build(&text).unwrap().0;
    d.revision = None;
    d
}

fn api() -> Provenance {
    Provenance {
        via: "api",
        ..Provenance::default()
    }
}

fn invite(name: &str) -> Change {
    let user = serde_json::from_value(serde_json::json!({
        "username": name,
        "email": format!("{name}@acme.example"),
        "organization": "acme",
        "name": "x".repeat(2000),
    }))
    .unwrap();
    Change {
        operations: vec![Operation::InviteUser { user }],
        bulk: false,
    }
}

#[test]
fn a_full_store_refuses_writes_whole_and_recovers_when_there_is_room() {
    if common::on_postgres() {
        // SQLite's quota; PostgreSQL's disk is PostgreSQL's to fill.
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("d.db");
    {
        let s = Service::open(Box::new(Sqlite::open(&path).unwrap())).unwrap();
        s.import(&example(), "operator", false, &api()).unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len()
        + std::fs::metadata(d.path().join("d.db-wal")).map_or(0, |m| m.len());
    // Room for a few more users, then full.
    let s = Service::open(Box::new(
        Sqlite::open_with_quota(&path, Some(size + 64 * 1024)).unwrap(),
    ))
    .unwrap();
    let mut answered = Vec::new();
    let full = loop {
        match s.write(
            "user/olivia",
            &invite(&format!("u{}", answered.len())),
            &api(),
        ) {
            Ok(c) => answered.push(c.revision),
            Err(e) => break e,
        }
        assert!(answered.len() < 10_000, "the quota never filled");
    };
    assert!(
        matches!(full, ServiceError::Storage(StorageError::Full(_))),
        "{full:?}"
    );
    assert_eq!(full.status(), 503);
    assert_eq!(full.reason(), "store_full");
    // Nothing of the refused write: the head and the log end at the last
    // answered revision, and reads go on.
    let last = *answered.last().unwrap();
    assert_eq!(s.head().unwrap().revision, last);
    assert_eq!(s.changes(0, 100_000).unwrap().len() as u64, last);
    let refused = format!("u{}", answered.len());
    assert!(
        !s.head()
            .unwrap()
            .directory
            .users
            .iter()
            .any(|u| u.username == refused)
    );
    drop(s);
    // Room again: the next write is the next revision, and what was
    // answered is all there.
    let s = Service::open(Box::new(Sqlite::open(&path).unwrap())).unwrap();
    assert_eq!(s.head().unwrap().revision, last);
    let c = s.write("user/olivia", &invite(&refused), &api()).unwrap();
    assert_eq!(c.revision, last + 1);
    let revisions: Vec<u64> = s
        .changes(0, 100_000)
        .unwrap()
        .iter()
        .map(|e| e.revision)
        .collect();
    assert_eq!(revisions, (1..=last + 1).collect::<Vec<_>>());
}

fn manifest(store: &Path) -> Option<Manifest> {
    Manifest::parse(&std::fs::read(store.join("latest.json")).ok()?).ok()
}

fn wait(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The example in a new service, published into `<dir>/store` by a
/// publisher coalescing for `window_ms`.
fn published_example(window_ms: u64) -> (tempfile::TempDir, Service, Arc<Publisher>) {
    let d = tempfile::tempdir().unwrap();
    let s = Service::open(common::store(&d.path().join("d.db"))).unwrap();
    s.import(&example(), "operator", false, &api()).unwrap();
    let publisher: Arc<Publisher> = Publisher::start(Destinations {
        store_dir: Some(d.path().join("store")),
        gateways: Vec::new(),
        key: None,
        window: Duration::from_millis(window_ms),
        keep: 10,
        full_every: 10,
        push_timeout: Duration::from_secs(1),
        gate: None,
    });
    s.listen(publisher.clone()).unwrap();
    (d, s, publisher)
}

#[test]
fn a_store_that_refuses_the_upload_is_retried_and_gateways_see_no_gap() {
    let (d, s, publisher) = published_example(50);
    let store = d.path().join("store");
    wait("revision 1 published", || {
        manifest(&store).is_some_and(|m| m.revision == 1)
    });

    // The store stops taking files (here: its directory replaced by a
    // file), and two revisions are committed meanwhile.
    let aside = d.path().join("store-aside");
    std::fs::rename(&store, &aside).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    let deactivate = |u: &str| Change {
        operations: vec![Operation::DeactivateUser { username: u.into() }],
        bulk: false,
    };
    assert_eq!(
        s.write("user/olivia", &deactivate("dave"), &api())
            .unwrap()
            .revision,
        2
    );
    assert_eq!(
        s.write("user/olivia", &deactivate("carol"), &api())
            .unwrap()
            .revision,
        3
    );
    wait("the failure is reported", || {
        publisher.state().failing.is_some()
    });
    assert_eq!(publisher.state().revision, 1);

    // The store comes back: the latest revision is published, with the
    // delta from the last one the store had — no gap for a replica at 1.
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(&aside, &store).unwrap();
    wait("revision 3 published", || {
        manifest(&store).is_some_and(|m| m.revision == 3)
    });
    let m = manifest(&store).unwrap();
    assert_eq!(m.deltas[0].from, 1);
    assert_eq!(m.deltas[0].to, 3);
    assert!(store.join(&m.deltas[0].path).is_file());
    assert!(publisher.state().failing.is_none());
    assert_eq!(publisher.state().revision, 3);
}

#[test]
fn what_the_store_holds_is_the_compiled_directory_and_new_strings_skip_the_delta() {
    // The publisher builds each snapshot from its own copy of the body,
    // patched with the writer's deltas: every published snapshot must be
    // what compiling the directory gives, and a delta in the store must
    // make it from the revision before. A new user changes the strings:
    // gateways load that snapshot whole, so no delta is computed for it.
    let (d, s, _publisher) = published_example(1);
    let store = d.path().join("store");
    let published = |revision: u64| {
        wait(&format!("revision {revision} published"), || {
            manifest(&store).is_some_and(|m| m.revision == revision)
        });
        let m = manifest(&store).unwrap();
        // As a fresh gateway reads it: the snapshot file, then the deltas
        // from the revision it holds (a full one is written only every
        // few publications).
        let mut bytes = std::fs::read(store.join(&m.snapshot)).unwrap();
        let (holds, sha) = m.snapshot_holds();
        for d in m.chain(holds, sha).unwrap() {
            let delta = portcullis_snapshots::delta::decode_delta(
                &std::fs::read(store.join(&d.path)).unwrap(),
            )
            .unwrap();
            bytes = delta.apply_to(&bytes).unwrap();
        }
        let head = s.head().unwrap();
        assert_eq!(head.revision, revision);
        let mut dir = head.directory.clone();
        dir.revision = None;
        let snapshot = portcullis_snapshots::decode(&bytes).unwrap();
        let compiled = source::compile(&dir).unwrap();
        // A user invited in place has their strings appended rather than
        // interned in compilation's order: the same directory then.
        assert!(
            snapshot.body == compiled
                || (snapshot.body.strings != compiled.strings
                    && source::decompile(&snapshot.body, None) == dir.without_bookkeeping()),
            "revision {revision}: the published body is not the compiled directory"
        );
        (m, bytes)
    };
    let (_, mut before) = published(1);
    let change = |op: Operation| Change {
        operations: vec![op],
        bulk: false,
    };
    let steps = [
        change(Operation::DeactivateUser {
            username: "dave".into(),
        }),
        invite("newcomer"),
        change(Operation::AddGrant {
            grant: portcullis_snapshots::source::Grant {
                principal: "user/newcomer".into(),
                role: "reader".into(),
                on: "org/acme".into(),
            },
        }),
        change(Operation::AddGroupMember {
            group: "analysts".into(),
            member: "user/newcomer".into(),
        }),
    ];
    for (i, c) in steps.iter().enumerate() {
        let revision = s.write("user/olivia", c, &api()).unwrap().revision;
        assert_eq!(revision, i as u64 + 2);
        let (m, bytes) = published(revision);
        if i == 1 {
            assert!(m.deltas.is_empty(), "a new user's revision lists no delta");
            assert!(m.snapshot_of.is_none(), "and is a full snapshot");
        } else {
            let entry = &m.deltas[0];
            assert_eq!((entry.from, entry.to), (revision - 1, revision));
            let delta = portcullis_snapshots::delta::decode_delta(
                &std::fs::read(store.join(&entry.path)).unwrap(),
            )
            .unwrap();
            assert_eq!(delta.apply_to(&before).unwrap(), bytes);
        }
        before = bytes;
    }
}
