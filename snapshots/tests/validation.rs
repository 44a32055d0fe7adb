//! One test per validation rule of the directory source: each asserts the
//! problem's JSON pointer and message, and that nothing compiles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use portcullis_snapshots::source::{Problem, build};
use serde_json::{Value, json};

/// A small valid directory to break one rule at a time.
fn base() -> Value {
    json!({
        "format": 1,
        "revision": 1,
        "organizations": [{"id": "acme"}, {"id": "emea", "parent": "acme"}],
        "environments": [{"id": "prod", "organization": "acme"}],
        "catalogs": [{"id": "sales", "environment": "prod"}],
        "objects": [{"id": "orders", "kind": "table", "parent": "catalog/sales"}],
        "users": [
            {"username": "olivia", "email": "olivia@acme.example", "organization": "acme", "admin_role": "owner"},
            {"username": "tom", "email": "tom@acme.example", "organization": "acme"},
            {"username": "nina", "email": "nina@acme.example", "organization": "acme", "allow_login": false}
        ],
        "service_accounts": [{"id": "ci-bot", "organization": "acme"}],
        "api_keys": [{"id": "k", "sha256": "a".repeat(64), "created_by": "user/tom"}],
        "groups": [{"id": "g", "name": "G", "code": "G", "members": ["user/tom", "service/ci-bot"]}],
        "teams": [{"id": "noc", "organization": "acme", "owner": "tom", "members": ["nina"]}],
        "custom_roles": [{"id": "um", "scopes": ["user:create"]}],
        "grants": [{"principal": "group/g", "role": "reader", "on": "env/prod"}],
        "permissions": [{"principal": "user/tom", "permission": "manage", "entity": "schemas"}]
    })
}

fn problems_of(v: &Value) -> Vec<Problem> {
    let text = serde_json::to_string_pretty(v).unwrap();
    match build(&text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(p) => p.0,
    }
}

/// Applies `edit` to the base directory and asserts exactly one problem at
/// `pointer` whose message contains `needle`.
#[track_caller]
fn assert_one(edit: impl FnOnce(&mut Value), pointer: &str, needle: &str) {
    let mut v = base();
    edit(&mut v);
    let p = problems_of(&v);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    assert_eq!(p[0].pointer, pointer, "{p:#?}");
    assert!(
        p[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        p[0].message
    );
    assert!(p[0].line > 0 && p[0].column > 0, "unlocated: {p:#?}");
}

#[test]
fn base_directory_is_valid() {
    let text = serde_json::to_string(&base()).unwrap();
    build(&text).unwrap();
}

#[test]
fn unknown_organization_reference() {
    assert_one(
        |v| v["environments"][0]["organization"] = json!("acmee"),
        "/environments/0/organization",
        "unknown organization \"acmee\"",
    );
}

#[test]
fn unknown_reference_suggests_case_fix() {
    let mut v = base();
    v["catalogs"][0]["environment"] = json!("Prod");
    let p = problems_of(&v);
    assert_eq!(
        p[0].hint.as_deref(),
        Some("did you mean \"prod\"? ids are case-sensitive")
    );
}

#[test]
fn unknown_group_member() {
    assert_one(
        |v| v["groups"][0]["members"][0] = json!("user/tim"),
        "/groups/0/members/0",
        "unknown user \"tim\"",
    );
}

#[test]
fn unknown_grant_node_and_wrong_node_kind() {
    assert_one(
        |v| v["grants"][0]["on"] = json!("catalog/finance"),
        "/grants/0/on",
        "unknown catalog",
    );
    assert_one(
        |v| v["objects"][0]["parent"] = json!("env/prod"),
        "/objects/0/parent",
        "cannot be used here",
    );
}

#[test]
fn unknown_custom_role() {
    assert_one(
        |v| v["grants"][0]["role"] = json!("role/auditor"),
        "/grants/0/role",
        "unknown custom role \"auditor\"",
    );
}

#[test]
fn duplicate_ids() {
    assert_one(
        |v| {
            v["catalogs"]
                .as_array_mut()
                .unwrap()
                .push(json!({"id": "sales", "environment": "prod"}))
        },
        "/catalogs/1/id",
        "duplicate catalog id \"sales\"",
    );
}

#[test]
fn duplicate_usernames() {
    assert_one(
        |v| {
            v["users"].as_array_mut().unwrap().push(
                json!({"username": "olivia", "email": "o2@acme.example", "organization": "acme"}),
            )
        },
        "/users/3/username",
        "duplicate user id \"olivia\"",
    );
}

#[test]
fn duplicate_emails_case_insensitive() {
    assert_one(
        |v| v["users"][1]["email"] = json!("OLIVIA@acme.example"),
        "/users/1/email",
        "duplicate email",
    );
}

#[test]
fn duplicate_group_names() {
    assert_one(
        |v| {
            v["groups"]
                .as_array_mut()
                .unwrap()
                .push(json!({"id": "g2", "name": "G", "code": "X"}))
        },
        "/groups/1/name",
        "duplicate group name \"G\"",
    );
}

#[test]
fn org_cycle() {
    let mut v = base();
    v["organizations"] =
        json!([{"id": "acme"}, {"id": "a", "parent": "b"}, {"id": "b", "parent": "a"}]);
    let p = problems_of(&v);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].pointer, "/organizations/1/parent");
    assert!(
        p[0].message.contains("cycle: a → b → a"),
        "{}",
        p[0].message
    );
}

#[test]
fn exactly_one_domain_org() {
    assert_one(
        |v| v["organizations"][1] = json!({"id": "emea"}),
        "/organizations/1",
        "a second organization without a parent",
    );
    let mut v = base();
    v["organizations"] = json!([{"id": "a", "parent": "a"}]);
    assert!(
        problems_of(&v)
            .iter()
            .any(|p| p.message == "no domain organization")
    );
}

#[test]
fn owner_outside_domain_org() {
    // Seed 003: "The account must sit directly under the domain organisation".
    assert_one(
        |v| v["users"][0]["organization"] = json!("emea"),
        "/users/0/organization",
        "outside the domain organization",
    );
}

#[test]
fn administrator_may_sit_anywhere() {
    // Seed 003: an administrator "can be under any organisation".
    let mut v = base();
    v["users"][0]["organization"] = json!("emea");
    v["users"][0]["admin_role"] = json!("administrator");
    build(&v.to_string()).unwrap();
}

#[test]
fn team_owner_not_a_user() {
    assert_one(
        |v| v["teams"][0]["owner"] = json!("service/ci-bot"),
        "/teams/0/owner",
        "is not a user",
    );
}

#[test]
fn team_owner_notification_only() {
    // Seed 002: notification-only users cannot own resources.
    assert_one(
        |v| v["teams"][0]["owner"] = json!("nina"),
        "/teams/0/owner",
        "notification-only",
    );
}

#[test]
fn role_at_wrong_level() {
    assert_one(
        |v| v["grants"][0]["role"] = json!("admin"),
        "/grants/0/role",
        "does not exist on an environment",
    );
    assert_one(
        |v| {
            v["grants"][0]["role"] = json!("custom_per_catalog");
            v["grants"][0]["on"] = json!("org/acme");
        },
        "/grants/0/role",
        "does not exist on an organization",
    );
    assert_one(
        |v| v["grants"][0]["on"] = json!("team/noc"),
        "/grants/0/role",
        "does not exist on a team",
    );
    assert_one(
        |v| {
            v["grants"][0]["role"] = json!("role/um");
            v["grants"][0]["on"] = json!("catalog/sales");
        },
        "/grants/0/role",
        "does not exist on a catalog",
    );
}

#[test]
fn view_on_manage_only_entity() {
    // Seed 004 lists Settings, Firewall rules, Users and User groups as Manage only.
    assert_one(
        |v| {
            v["permissions"][0] =
                json!({"principal": "user/tom", "permission": "view", "entity": "firewall_rules"})
        },
        "/permissions/0/permission",
        "firewall_rules has no View",
    );
}

#[test]
fn permission_entity_required_or_forbidden() {
    assert_one(
        |v| v["permissions"][0] = json!({"principal": "user/tom", "permission": "manage"}),
        "/permissions/0",
        "needs an \"entity\"",
    );
    assert_one(
        |v| {
            v["permissions"][0] =
                json!({"principal": "user/tom", "permission": "super_admin", "entity": "views"})
        },
        "/permissions/0/entity",
        "takes no entity",
    );
}

#[test]
fn api_key_creator_missing() {
    assert_one(
        |v| v["api_keys"][0]["created_by"] = json!("user/ghost"),
        "/api_keys/0/created_by",
        "creator that does not exist",
    );
}

#[test]
fn api_key_hash_format() {
    assert_one(
        |v| v["api_keys"][0]["sha256"] = json!("A".repeat(64)),
        "/api_keys/0/sha256",
        "64 lower-case hex",
    );
}

#[test]
fn api_keys_and_support_cannot_hold_grants() {
    assert_one(
        |v| v["grants"][0]["principal"] = json!("apikey/k"),
        "/grants/0/principal",
        "API keys cannot hold grants",
    );
    assert_one(
        |v| v["grants"][0]["principal"] = json!("support"),
        "/grants/0/principal",
        "support principal cannot hold grants",
    );
}

#[test]
fn unknown_scope() {
    assert_one(
        |v| v["custom_roles"][0]["scopes"][0] = json!("user:launch"),
        "/custom_roles/0/scopes/0",
        "unknown scope",
    );
}

#[test]
fn malformed_timestamp() {
    assert_one(
        |v| v["users"][1]["expires_at"] = json!("2026-02-30T00:00:00Z"),
        "/users/1/expires_at",
        "invalid timestamp",
    );
}

#[test]
fn unknown_fields() {
    assert_one(
        |v| v["users"][1]["emial_verified"] = json!(true),
        "/users/1/emial_verified",
        "unknown field \"emial_verified\"",
    );
    assert_one(
        |v| v["rules"] = json!([]),
        "/rules",
        "unknown field \"rules\"",
    );
}

#[test]
fn wrong_format_version() {
    assert_one(
        |v| v["format"] = json!(2),
        "/format",
        "unsupported format 2",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut v = base();
    v["users"][1]["organization"] = json!("nowhere");
    v["grants"][0]["role"] = json!("admin");
    v["teams"][0]["owner"] = json!("nina");
    v["api_keys"][0]["created_by"] = json!("user/ghost");
    assert_eq!(problems_of(&v).len(), 4);
    // Structural problems in several elements are all found too.
    let mut v = base();
    v["users"][0]["status"] = json!("suspended");
    v["users"][1]["allow_login"] = json!("yes");
    v["users"][2]["expires_at"] = json!("soon");
    v["organizations"][0]["colour"] = json!("red");
    assert_eq!(problems_of(&v).len(), 4);
}

#[test]
fn positions_are_line_and_column() {
    let text = "{\n  \"format\": 1,\n  \"organizations\": [\n    {\"id\": \"acme\"},\n    {\"id\": \"emea\", \"parent\": \"nope\"}\n  ]\n}\n";
    let p = build(text).unwrap_err().0;
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!((p[0].line, p[0].column), (5, 20), "{p:#?}");
    let p = build("{\"format\": 1,\n \"organizations\": [}")
        .unwrap_err()
        .0;
    assert_eq!(p[0].line, 2, "{p:#?}");
}

/// Seed 002: the support principal is outside the customer's control, so
/// no user of the directory may take its name (issue #12, hole 2).
#[test]
fn the_username_support_is_reserved() {
    assert_one(
        |v| v["users"][0]["username"] = json!("Support"),
        "/users/0/username",
        "reserved",
    );
}
