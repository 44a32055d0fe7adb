//! What a UI asks: every action a principal may take on a resource, and the
//! nodes of a kind it may act on — natively and through the module, alike.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use policy_wasm::wire::{ListQuery, PermissionsQuery};
use policy_wasm::{Context, Engine};
use portcullis_host::module::{InstanceLimits, PolicyModule};
use portcullis_snapshots::encode;
use portcullis_snapshots::source::build;
use portcullis_tests::examples_dir;

fn example() -> Vec<u8> {
    let text = std::fs::read_to_string(examples_dir().join("acme.json")).unwrap();
    let (_, body) = build(&text).unwrap();
    encode(&body, 1, 0).unwrap()
}

const NOW: Context = Context {
    now: 1_795_000_000,
    bulk: false,
};

#[test]
fn permissions_list_exactly_the_allowed_actions() {
    let engine = Engine::load(&example()).unwrap();
    // pat: reader on env/prod through group/analysts.
    assert_eq!(
        engine.permissions("user/pat", "env/prod", NOW),
        ["dashboards:view", "env:open", "read"]
    );
    // wendy: writer on env/prod.
    assert_eq!(
        engine.permissions("user/wendy", "catalog/sales", NOW),
        ["read", "write"]
    );
    // victor: seed 004 permissions on the domain org.
    let v = engine.permissions("user/victor", "entity/schemas", NOW);
    assert_eq!(v, ["view", "manage", "create", "edit", "remove"]);
    assert_eq!(
        engine.permissions("user/victor", "entity/pipelines", NOW),
        ["view"]
    );
    // tom owns team/noc.
    let t = engine.permissions("user/tom", "team/noc", NOW);
    assert!(
        t.contains(&"team:invite".to_string()) && t.contains(&"team:update".to_string()),
        "{t:?}"
    );
    // An inactive user may do nothing; an unknown one neither.
    assert!(
        engine
            .permissions("user/dan", "catalog/sales", NOW)
            .is_empty()
    );
    assert!(
        engine
            .permissions("user/nobody", "catalog/sales", NOW)
            .is_empty()
    );
    // Every permission listed is one check allows, and nothing else is.
    for p in engine.permissions("user/olivia", "org/emea", NOW) {
        let req = policy_wasm::Request {
            principal: "user/olivia",
            action: &p,
            resource: "org/emea",
            context: NOW,
        };
        assert!(engine.check(&req).allowed, "{p}");
    }
}

#[test]
fn list_returns_the_nodes_a_principal_may_act_on() {
    let engine = Engine::load(&example()).unwrap();
    // carol opens prod (custom per catalog) and staging (reader).
    assert_eq!(
        engine
            .list("user/carol", "env:open", "env", "org/acme", NOW)
            .unwrap(),
        ["env/prod", "env/staging"]
    );
    // gus reads only the Globex catalog (and nothing in EMEA).
    assert_eq!(
        engine
            .list("user/gus", "read", "catalog", "org/acme", NOW)
            .unwrap(),
        ["catalog/globex-data"]
    );
    // Below a node only.
    assert_eq!(
        engine
            .list("user/dave", "read", "catalog", "env/staging", NOW)
            .unwrap(),
        ["catalog/staging-sales"]
    );
    assert!(
        engine
            .list("user/nobody", "read", "catalog", "org/acme", NOW)
            .is_err()
    );
    assert!(
        engine
            .list("user/dave", "read", "galaxy", "org/acme", NOW)
            .is_err()
    );
}

#[test]
fn module_answers_ui_queries_like_the_native_engine() {
    let bytes = example();
    let engine = Engine::load(&bytes).unwrap();
    let mut wasm = PolicyModule::new()
        .unwrap()
        .instantiate(InstanceLimits::default())
        .unwrap();
    wasm.load_snapshot(&bytes).unwrap();
    for principal in [
        "user/pat",
        "user/olivia",
        "user/adam",
        "user/tom",
        "service/ci-bot",
        "support",
        "user/nobody",
    ] {
        for resource in [
            "org/acme",
            "org/emea",
            "env/prod",
            "catalog/sales",
            "team/noc",
            "user/kim",
            "entity/users",
            "object/hq-site",
        ] {
            let q = PermissionsQuery {
                principal,
                resource,
                context: NOW,
            };
            assert_eq!(
                wasm.permissions(&q).unwrap(),
                engine.permissions(principal, resource, NOW),
                "{principal} {resource}"
            );
        }
        for (action, kind) in [
            ("read", "catalog"),
            ("env:open", "env"),
            ("org:open", "org"),
            ("team:view", "team"),
        ] {
            let q = ListQuery {
                principal,
                action,
                kind,
                under: "org/acme",
                context: NOW,
            };
            assert_eq!(
                wasm.list(&q).unwrap(),
                engine.list(principal, action, kind, "org/acme", NOW),
                "{principal} {action}"
            );
        }
    }
}

#[test]
fn a_bad_snapshot_is_refused_and_the_old_one_keeps_serving() {
    let bytes = example();
    let mut wasm = PolicyModule::new()
        .unwrap()
        .instantiate(InstanceLimits::default())
        .unwrap();
    wasm.load_snapshot(&bytes).unwrap();
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let err = wasm.load_snapshot(&bad).unwrap_err().to_string();
    assert!(err.contains("SHA-256"), "{err}");
    assert_eq!(wasm.revision().unwrap(), Some(1));
    let req = policy_wasm::Request {
        principal: "user/pat",
        action: "read",
        resource: "catalog/sales",
        context: NOW,
    };
    assert!(wasm.check(&req).unwrap().allowed);
}

#[test]
fn malformed_requests_get_a_status_never_a_trap() {
    use portcullis_host::module::HostError;
    let mut wasm = PolicyModule::new()
        .unwrap()
        .instantiate(InstanceLimits::default())
        .unwrap();
    // Before any snapshot: a status, not a trap.
    assert!(matches!(
        wasm.check_raw(b"\x01a\x01b\x01c\x00\x00"),
        Err(HostError::NoSnapshot | HostError::Status(-1))
    ));
    wasm.load_snapshot(&example()).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..400usize {
        let bytes: Vec<u8> = (0..len % 64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        match wasm.check_raw(&bytes) {
            Ok(_) | Err(HostError::Status(-2)) => {}
            Err(e) => panic!("{bytes:?}: {e}"),
        }
    }
    // Strings that are not UTF-8 are malformed, not a crash.
    assert!(matches!(
        wasm.check_raw(b"\x02\xff\xfe\x01a\x01b\x00\x00"),
        Err(HostError::Status(-2))
    ));
    // And the instance still answers.
    let req = policy_wasm::Request {
        principal: "user/pat",
        action: "read",
        resource: "catalog/sales",
        context: NOW,
    };
    assert!(wasm.check(&req).unwrap().allowed);
}
