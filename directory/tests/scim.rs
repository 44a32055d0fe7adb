//! SCIM 2.0 over the directory service: what Okta and Microsoft Entra ID
//! send, replayed as they send it; the organization as the scope of every
//! request; every change an authorized write logged `via = scim`; every
//! bad request a SCIM error that says what is wrong.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::path::Path;
use std::sync::Arc;

use portcullis_directory::operation::{Operation, Setting};
use portcullis_directory::scim::{Provider, ScimAnswer, ScimRequest};
use portcullis_directory::service::{Change, Provenance, Service};

mod common;
use portcullis_snapshots::source;
use portcullis_snapshots::vocabulary::UserStatus;
use serde_json::{Value, json};

/// sam (a super administrator of acme)'s key: `pk_demo_sam_deploy`.
const SAM_KEY: &str = "apikey/3f50f96db4bdb3282068d277cf77e98750d393ad80b6e1d4c01e28a30fa286dd";
/// dave (no administrator role)'s key: `pk_demo_dave_notebook`.
const DAVE_KEY: &str = "apikey/68d086f02b5f2d8f7eba7f6c1b1754592a986ecbdc51c922b92fd1e57a84b367";
const BASE: &str = "https://directory.test/scim/v2/acme";

struct Fixture {
    service: Arc<Service>,
    provider: Provider,
    _dir: tempfile::TempDir,
}

fn api() -> Provenance {
    Provenance {
        via: "api",
        ..Provenance::default()
    }
}

fn write(s: &Service, actor: &str, ops: Vec<Operation>) {
    s.write(
        actor,
        &Change {
            operations: ops,
            bulk: false,
        },
        &api(),
    )
    .unwrap();
}

/// The example directory; `credentials` provision acme (set by olivia,
/// an owner), and `service/emea-sync` provisions emea.
fn fixture(credentials: Value) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = Service::open(common::store(&dir.path().join("directory.db"))).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/examples/acme.json"),
    )
    .unwrap();
    let mut d = source::build(&text).unwrap().0;
    d.revision = None;
    s.import(&d, "operator", false, &api()).unwrap();
    let setting = json!({"organizations": {
        "acme": {"credentials": credentials},
        "emea": {"credentials": ["service/emea-sync"]},
    }});
    write(
        &s,
        "user/olivia",
        vec![Operation::SetSetting {
            name: Setting::Scim,
            value: setting.as_object().unwrap().clone(),
        }],
    );
    let service = Arc::new(s);
    let provider = Provider::new(service.clone()).unwrap();
    Fixture {
        service,
        provider,
        _dir: dir,
    }
}

fn sam() -> Fixture {
    fixture(json!(["key/sam-deploy", "key/dave-notebook"]))
}

struct Call<'a> {
    method: &'a str,
    org: &'a str,
    path: &'a str,
    query: Vec<(String, String)>,
    body: Value,
    principal: Option<&'a str>,
    if_match: Option<String>,
}

impl Fixture {
    fn send(&self, c: Call<'_>) -> ScimAnswer {
        let body = if c.body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&c.body).unwrap()
        };
        self.provider.handle(&ScimRequest {
            method: c.method,
            org: c.org,
            rest: c
                .path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            query: &c.query,
            body: &body,
            if_match: c.if_match.as_deref(),
            if_none_match: None,
            base: format!("https://directory.test/scim/v2/{}", c.org),
            principal: c
                .principal
                .map(str::to_string)
                .ok_or_else(|| "no credential".to_string()),
            request_id: Some("test".into()),
        })
    }

    /// As sam's key, in acme.
    fn call(&self, method: &str, path: &str, body: Value) -> ScimAnswer {
        self.send(Call {
            method,
            org: "acme",
            path,
            query: Vec::new(),
            body,
            principal: Some(SAM_KEY),
            if_match: None,
        })
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> ScimAnswer {
        self.send(Call {
            method: "GET",
            org: "acme",
            path,
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Value::Null,
            principal: Some(SAM_KEY),
            if_match: None,
        })
    }

    fn filter(&self, path: &str, f: &str) -> Value {
        let a = self.get(path, &[("filter", f)]);
        assert_eq!(a.status, 200, "{f}: {:?}", a.body);
        a.body.unwrap()
    }

    fn user(&self, u: &str) -> portcullis_snapshots::source::User {
        let head = self.service.head().unwrap();
        head.directory
            .users
            .iter()
            .find(|x| x.username == u)
            .unwrap_or_else(|| panic!("no user {u}"))
            .clone()
    }

    fn has_user(&self, u: &str) -> bool {
        self.service.head().unwrap().engine.user_row(u).is_some()
    }

    fn group(&self, id: &str) -> portcullis_snapshots::source::Group {
        let head = self.service.head().unwrap();
        head.directory
            .groups
            .iter()
            .find(|g| g.id == id)
            .unwrap()
            .clone()
    }

    fn last_log(&self) -> portcullis_directory::storage::LogEntry {
        let rev = self.service.head().unwrap().revision;
        self.service
            .changes(rev - 1, 1)
            .unwrap()
            .pop()
            .expect("a log entry")
    }
}

fn ok(a: &ScimAnswer, status: u16) -> Value {
    assert_eq!(a.status, status, "{:?}", a.body);
    a.body.clone().unwrap_or(Value::Null)
}

fn scim_error(a: &ScimAnswer, status: u16, scim_type: Option<&str>) -> String {
    assert_eq!(a.status, status, "{:?}", a.body);
    let b = a.body.as_ref().unwrap();
    assert_eq!(
        b["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(b["status"], status.to_string());
    assert_eq!(b.get("scimType").and_then(Value::as_str), scim_type, "{b}");
    let d = b["detail"].as_str().unwrap().to_string();
    assert!(!d.is_empty());
    d
}

/// Okta's provisioning cycle as Okta sends it (its SCIM 2.0 reference):
/// a probe by `userName eq`, a create, a profile update by PUT, group
/// push, a deactivation by `PATCH active:false` (never a DELETE) after
/// which the user stays readable, a reactivation.
#[test]
fn okta_provisions_as_okta_sends_it() {
    let f = sam();
    // The probe before a create: nothing.
    let probe = f.filter("Users", r#"userName eq "jo@acme.example""#);
    assert_eq!(probe["totalResults"], 0);
    assert_eq!(
        probe["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    let created = f.call(
        "POST",
        "Users",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "jo@acme.example",
            "name": {"givenName": "Jo", "familyName": "Park"},
            "emails": [{"primary": true, "value": "jo@acme.example", "type": "work"}],
            "displayName": "Jo Park",
            "locale": "en-US",
            "externalId": "00u1abcd",
            "groups": [],
            "password": "ignored-1!",
            "active": true
        }),
    );
    let user = ok(&created, 201);
    assert_eq!(user["id"], "jo@acme.example");
    assert_eq!(user["active"], true);
    assert_eq!(user["name"]["givenName"], "Jo");
    assert_eq!(user["meta"]["resourceType"], "User");
    assert_eq!(
        created.location.as_deref(),
        Some("https://directory.test/scim/v2/acme/Users/jo@acme.example")
    );
    assert!(created.etag.as_deref().unwrap().starts_with("W/\""));
    // In the directory: acme's, verified by the IdP, active.
    let jo = f.user("jo@acme.example");
    assert_eq!(jo.organization, "acme");
    assert!(jo.email_verified);
    assert_eq!(jo.status, UserStatus::Active);
    assert_eq!(jo.external_id.as_deref(), Some("00u1abcd"));
    // Logged as a SCIM write by the key, with its decision.
    let log = f.last_log();
    assert_eq!(log.via, "scim");
    assert_eq!(log.actor, SAM_KEY);
    assert_eq!(log.request_id.as_deref(), Some("test"));
    assert_eq!(log.decisions[0]["decisions"][0]["action"], "user:invite");
    // The probe finds it now; so does GET by id.
    let probe = f.filter("Users", r#"userName eq "JO@acme.example""#);
    assert_eq!(probe["totalResults"], 1);
    assert_eq!(probe["Resources"][0]["id"], "jo@acme.example");
    let got = ok(&f.get("Users/jo@acme.example", &[]), 200);
    assert_eq!(got["emails"][0]["value"], "jo@acme.example");
    // Creating it again: 409 uniqueness.
    scim_error(
        &f.call(
            "POST",
            "Users",
            json!({"userName": "jo@acme.example", "emails": [{"value": "jo2@acme.example"}]}),
        ),
        409,
        Some("uniqueness"),
    );
    // Profile update: Okta PUTs the whole user.
    let mut put = got.clone();
    put["name"]["familyName"] = json!("Park-Lee");
    put["displayName"] = json!("Jo Park-Lee");
    let a = ok(&f.call("PUT", "Users/jo@acme.example", put), 200);
    assert_eq!(a["name"]["familyName"], "Park-Lee");
    assert_eq!(
        f.user("jo@acme.example").last_name.as_deref(),
        Some("Park-Lee")
    );
    // Group push: create, then membership by PATCH.
    let g = ok(
        &f.call(
            "POST",
            "Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Okta Pushed", "members": []}),
        ),
        201,
    );
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(f.group(&gid).organization.as_deref(), Some("acme"));
    ok(
        &f.call(
            "PATCH",
            &format!("Groups/{gid}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "path": "members",
                                   "value": [{"value": "jo@acme.example", "display": "jo@acme.example"}, {"value": "pat"}]}]}),
        ),
        200,
    );
    assert_eq!(
        f.group(&gid).members,
        vec!["user/jo@acme.example".to_string(), "user/pat".to_string()]
    );
    ok(
        &f.call(
            "PATCH",
            &format!("Groups/{gid}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "remove", "path": "members[value eq \"pat\"]"}]}),
        ),
        200,
    );
    assert_eq!(
        f.group(&gid).members,
        vec!["user/jo@acme.example".to_string()]
    );
    // Deprovisioning: PATCH active false. Deactivated, still readable.
    let a = ok(
        &f.call(
            "PATCH",
            "Users/jo@acme.example",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": false}}]}),
        ),
        200,
    );
    assert_eq!(a["active"], false);
    assert_eq!(f.user("jo@acme.example").status, UserStatus::Deactivated);
    assert!(f.last_log().operations[0]["op"] == "deactivate_user");
    let a = ok(&f.get("Users/jo@acme.example", &[]), 200);
    assert_eq!(a["active"], false);
    let inactive = f.filter("Users", "active eq false");
    assert!(
        inactive["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == "jo@acme.example")
    );
    // The engine then refuses jo everywhere.
    let head = f.service.head().unwrap();
    let d = head.engine.check(&policy_wasm::Request {
        principal: "user/jo@acme.example",
        action: "read",
        resource: "org/acme",
        context: policy_wasm::Context {
            now: 1_800_000_000,
            bulk: false,
        },
    });
    assert!(!d.allowed);
    // Reactivation.
    let a = ok(
        &f.call(
            "PATCH",
            "Users/jo@acme.example",
            json!({"Operations": [{"op": "replace", "path": "active", "value": true}]}),
        ),
        200,
    );
    assert_eq!(a["active"], true);
    assert_eq!(f.user("jo@acme.example").status, UserStatus::Active);
}

/// Microsoft Entra ID's provisioning cycle as Entra sends it (its SCIM
/// validator's requests, with and without `aadOptscim062020`): a probe by
/// `userName eq` (or `externalId eq`), capitalised ops, booleans as
/// strings, pathless replaces with dotted and schema-qualified keys, the
/// enterprise extension, group probes by `displayName eq` with members
/// excluded, members removed by a value list and by a path filter, and a
/// DELETE at the end.
#[test]
fn entra_provisions_as_entra_sends_it() {
    let f = sam();
    let probe = f.filter("Users", r#"userName eq "Kai@acme.example""#);
    assert_eq!(probe["totalResults"], 0);
    let created = ok(
        &f.call(
            "POST",
            "Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": "8c1f7d4e-0001",
                "userName": "Kai@acme.example",
                "active": true,
                "displayName": "Kai Lund",
                "emails": [{"primary": true, "type": "work", "value": "Kai@acme.example"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Kai Lund", "familyName": "Lund", "givenName": "Kai"},
                "roles": [],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "department": "Finance", "manager": {"value": "pat"}, "employeeNumber": "42"
                }
            }),
        ),
        201,
    );
    assert_eq!(created["externalId"], "8c1f7d4e-0001");
    // Entra matches by externalId too.
    let by_ext = f.filter("Users", r#"externalId eq "8c1f7d4e-0001""#);
    assert_eq!(by_ext["totalResults"], 1);
    assert_eq!(
        f.filter("Users", r#"externalId eq "8C1F7D4E-0001""#)["totalResults"],
        0,
        "externalId is case-exact"
    );
    // Updates as Entra sends them.
    let a = ok(
        &f.call(
            "PATCH",
            "Users/Kai@acme.example",
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "Replace", "path": "displayName", "value": "Kai Lund-Berg"},
                    {"op": "Replace", "path": "name.familyName", "value": "Lund-Berg"},
                    {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+46 8 123"},
                    {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Treasury"},
                    {"op": "Replace", "value": {"name.givenName": "Kaj", "urn:ietf:params:scim:schemas:core:2.0:User:locale": "sv-SE"}},
                    {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "pat"}
                ]
            }),
        ),
        200,
    );
    assert_eq!(a["displayName"], "Kai Lund-Berg");
    let kai = f.user("Kai@acme.example");
    assert_eq!(kai.first_name.as_deref(), Some("Kaj"));
    assert_eq!(kai.last_name.as_deref(), Some("Lund-Berg"));
    assert_eq!(kai.phone.as_deref(), Some("+46 8 123"));
    assert_eq!(kai.locale.as_deref(), Some("sv-SE"));
    // Groups: probed by displayName with members excluded, created,
    // members added and removed both ways.
    let probe = f.get(
        "Groups",
        &[
            ("filter", r#"displayName eq "Finance""#),
            ("excludedAttributes", "members"),
        ],
    );
    assert_eq!(ok(&probe, 200)["totalResults"], 0);
    let g = ok(
        &f.call(
            "POST",
            "Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                   "externalId": "e0b7-finance", "displayName": "Finance", "members": []}),
        ),
        201,
    );
    let gid = g["id"].as_str().unwrap().to_string();
    let probe = f.get(
        "Groups",
        &[
            ("filter", r#"displayName eq "Finance""#),
            ("excludedAttributes", "members"),
        ],
    );
    let found = ok(&probe, 200);
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none());
    ok(
        &f.call(
            "PATCH",
            &format!("Groups/{gid}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Add", "path": "members",
                                   "value": [{"value": "Kai@acme.example"}, {"value": "pat"}, {"value": "carol"}]}]}),
        ),
        200,
    );
    assert_eq!(f.group(&gid).members.len(), 3);
    ok(
        &f.call(
            "PATCH",
            &format!("Groups/{gid}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Remove", "path": "members", "value": [{"value": "pat"}]}]}),
        ),
        200,
    );
    ok(
        &f.call(
            "PATCH",
            &format!("Groups/{gid}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Remove", "path": "members[value eq \"carol\"]"}]}),
        ),
        200,
    );
    assert_eq!(
        f.group(&gid).members,
        vec!["user/Kai@acme.example".to_string()]
    );
    // A rename by a pathless replace.
    ok(
        &f.call(
            "PATCH",
            &format!("Groups/{gid}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Replace", "value": {"id": gid, "displayName": "Finance EMEA"}}]}),
        ),
        400,
    );
    ok(
        &f.call(
            "PATCH",
            &format!("Groups/{gid}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Replace", "value": {"displayName": "Finance EMEA"}}]}),
        ),
        200,
    );
    assert_eq!(f.group(&gid).name, "Finance EMEA");
    // Disable: `active` "False" as a string.
    let a = ok(
        &f.call(
            "PATCH",
            "Users/Kai@acme.example",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        ),
        200,
    );
    assert_eq!(a["active"], false);
    assert_eq!(f.user("Kai@acme.example").status, UserStatus::Deactivated);
    // Enable again with "True".
    ok(
        &f.call(
            "PATCH",
            "Users/Kai@acme.example",
            json!({"Operations": [{"op": "Replace", "path": "active", "value": "True"}]}),
        ),
        200,
    );
    assert_eq!(f.user("Kai@acme.example").status, UserStatus::Active);
    // Delete: memberships go with the user; the group stays.
    let a = f.call("DELETE", "Users/Kai@acme.example", Value::Null);
    assert_eq!(a.status, 204, "{:?}", a.body);
    assert!(!f.has_user("Kai@acme.example"));
    assert!(f.group(&gid).members.is_empty());
    scim_error(&f.get("Users/Kai@acme.example", &[]), 404, None);
    let a = f.call("DELETE", &format!("Groups/{gid}"), Value::Null);
    assert_eq!(a.status, 204);
    scim_error(&f.get(&format!("Groups/{gid}"), &[]), 404, None);
}

/// Seed 000: only a super administrator (or owner) configures SCIM; the
/// token is a key such a user made, named for the organization, and the
/// engine asks every request again — a key revoked, or a creator
/// deactivated, stops at once.
#[test]
fn seed_000_only_a_super_administrators_key_named_for_the_organization_provisions_it() {
    let f = sam();
    // No credential; a credential not named for the organization.
    scim_error(
        &f.send(Call {
            method: "GET",
            org: "acme",
            path: "Users",
            query: Vec::new(),
            body: Value::Null,
            principal: None,
            if_match: None,
        }),
        401,
        None,
    );
    let stranger = f.send(Call {
        method: "GET",
        org: "acme",
        path: "Users",
        query: Vec::new(),
        body: Value::Null,
        principal: Some("service/ci-bot"),
        if_match: None,
    });
    scim_error(&stranger, 403, None);
    assert_eq!(stranger.reason.as_deref(), Some("scim_not_configured"));
    // dave's key is named, but dave is no super administrator: the engine
    // refuses admin:scim.
    let dave = f.send(Call {
        method: "GET",
        org: "acme",
        path: "Users",
        query: Vec::new(),
        body: Value::Null,
        principal: Some(DAVE_KEY),
        if_match: None,
    });
    let d = scim_error(&dave, 403, None);
    assert!(d.contains("admin:scim"), "{d}");
    // Only an owner or super administrator may name credentials.
    let r = f.service.write(
        "user/adam",
        &Change {
            operations: vec![Operation::SetSetting {
                name: Setting::Scim,
                value: json!({"organizations": {"emea": {"credentials": ["key/sam-deploy"]}}})
                    .as_object()
                    .unwrap()
                    .clone(),
            }],
            bulk: false,
        },
        &api(),
    );
    assert!(
        matches!(
            r,
            Err(portcullis_directory::error::ServiceError::Denied { .. })
        ),
        "{r:?}"
    );
    // A setting naming what does not exist is refused with each problem.
    let r = f.service.write(
        "user/olivia",
        &Change {
            operations: vec![Operation::SetSetting {
                name: Setting::Scim,
                value: json!({"organizations": {"nowhere": {"credentials": ["key/none", "bob"]}}})
                    .as_object()
                    .unwrap()
                    .clone(),
            }],
            bulk: false,
        },
        &api(),
    );
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("nowhere") && e.contains("key/none") && e.contains("\"bob\""),
        "{e}"
    );
    // sam's key works; revoked, it stops at the next request.
    ok(&f.get("Users", &[("count", "1")]), 200);
    write(
        &f.service,
        "user/sam",
        vec![Operation::RevokeApiKey {
            id: "sam-deploy".into(),
        }],
    );
    let a = f.get("Users", &[]);
    scim_error(&a, 403, None);
    assert_eq!(a.reason.as_deref(), Some("api_key_revoked"));
}

/// A token of one organization reads and changes nothing of another: not
/// by id, by filter, by a member value, nor by listing.
#[test]
fn an_organizations_token_cannot_reach_another_organizations_users() {
    let f = sam();
    // adam is emea's; pat is acme's.
    scim_error(&f.get("Users/adam", &[]), 404, None);
    assert_eq!(
        f.filter("Users", r#"userName eq "adam""#)["totalResults"],
        0
    );
    assert_eq!(
        f.filter("Users", r#"emails.value eq "adam@acme.example""#)["totalResults"],
        0
    );
    let all = ok(&f.get("Users", &[("count", "1000")]), 200);
    let ids: Vec<&str> = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"pat") && !ids.contains(&"adam") && !ids.contains(&"gus"));
    assert_eq!(all["totalResults"], ids.len());
    for (method, body) in [
        (
            "PUT",
            json!({"userName": "adam", "emails": [{"value": "adam@acme.example"}]}),
        ),
        (
            "PATCH",
            json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}),
        ),
        ("DELETE", Value::Null),
    ] {
        scim_error(&f.call(method, "Users/adam", body), 404, None);
    }
    assert_eq!(f.user("adam").status, UserStatus::Active);
    // A group of acme cannot take emea's users as members.
    let a = f.call(
        "POST",
        "Groups",
        json!({"displayName": "Sneaky", "members": [{"value": "adam"}]}),
    );
    let d = scim_error(&a, 400, Some("invalidValue"));
    assert!(d.contains("adam"), "{d}");
    // Groups made outside SCIM (no organization) are not any token's.
    scim_error(&f.get("Groups/analysts", &[]), 404, None);
    // The emea credential does not reach acme.
    let a = f.send(Call {
        method: "GET",
        org: "acme",
        path: "Users/pat",
        query: Vec::new(),
        body: Value::Null,
        principal: Some("service/emea-sync"),
        if_match: None,
    });
    scim_error(&a, 403, None);
    // An unknown organization answers as one not configured.
    let a = f.send(Call {
        method: "GET",
        org: "globex",
        path: "Users",
        query: Vec::new(),
        body: Value::Null,
        principal: Some(SAM_KEY),
        if_match: None,
    });
    assert_eq!(a.reason.as_deref(), Some("scim_not_configured"));
}

#[test]
fn filters_paging_attributes_and_versions() {
    let f = sam();
    for i in 0..12 {
        ok(
            &f.call(
                "POST",
                "Users",
                json!({"userName": format!("px{i:02}"), "emails": [{"value": format!("px{i:02}@acme.example")}],
                       "displayName": format!("Person {i}"), "active": i % 3 != 0}),
            ),
            201,
        );
    }
    let page = |start: &str, count: &str| {
        ok(
            &f.get(
                "Users",
                &[
                    ("filter", r#"userName sw "px""#),
                    ("startIndex", start),
                    ("count", count),
                ],
            ),
            200,
        )
    };
    let a = page("1", "5");
    assert_eq!(a["totalResults"], 12);
    assert_eq!(a["itemsPerPage"], 5);
    assert_eq!(a["Resources"][0]["id"], "px00");
    let b = page("11", "5");
    assert_eq!(b["itemsPerPage"], 2);
    assert_eq!(b["Resources"][1]["id"], "px11");
    assert_eq!(page("0", "2")["startIndex"], 1);
    assert_eq!(page("1", "0")["itemsPerPage"], 0);
    assert_eq!(page("1", "0")["totalResults"], 12);
    assert_eq!(
        f.filter(
            "Users",
            r#"userName sw "px" and (active eq false or displayName ew "11")"#
        )["totalResults"],
        5
    );
    assert!(
        f.filter(
            "Users",
            r#"not (userName sw "px") and emails[value ew "acme.example"]"#
        )["totalResults"]
            .as_u64()
            .unwrap()
            > 5
    );
    assert_eq!(
        f.filter(
            "Users",
            r#"meta.lastModified gt "2000-01-01T00:00:00Z" and userName sw "px""#
        )["totalResults"],
        12
    );
    assert_eq!(
        f.filter("Users", r#"meta.lastModified lt "2000-01-01T00:00:00Z""#)["totalResults"],
        0
    );
    // Unfiltered listing pages through the whole organization.
    let all = ok(&f.get("Users", &[("count", "3")]), 200);
    assert!(all["totalResults"].as_u64().unwrap() > 12);
    assert_eq!(all["itemsPerPage"], 3);
    // attributes / excludedAttributes.
    let a = ok(
        &f.get("Users/px01", &[("attributes", "userName,name.givenName")]),
        200,
    );
    assert_eq!(a["id"], "px01");
    assert!(a.get("emails").is_none() && a.get("displayName").is_none());
    let a = ok(
        &f.get("Users/px01", &[("excludedAttributes", "emails")]),
        200,
    );
    assert!(a.get("emails").is_none() && a.get("displayName").is_some());
    // POST .search.
    let a = ok(
        &f.call(
            "POST",
            "Users/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": "userName eq \"px03\"", "attributes": ["userName"], "startIndex": 1, "count": 10}),
        ),
        200,
    );
    assert_eq!(a["totalResults"], 1);
    // Versions: If-Match with a stale version is 412 and changes nothing.
    let got = f.get("Users/px01", &[]);
    let v1 = got.etag.clone().unwrap();
    let a = f.send(Call {
        method: "PATCH",
        org: "acme",
        path: "Users/px01",
        query: Vec::new(),
        body: json!({"Operations": [{"op": "replace", "path": "displayName", "value": "One"}]}),
        principal: Some(SAM_KEY),
        if_match: Some(v1.clone()),
    });
    let v2 = ok(&a, 200)["meta"]["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    let a = f.send(Call {
        method: "PATCH",
        org: "acme",
        path: "Users/px01",
        query: Vec::new(),
        body: json!({"Operations": [{"op": "replace", "path": "displayName", "value": "Two"}]}),
        principal: Some(SAM_KEY),
        if_match: Some(v1),
    });
    scim_error(&a, 412, None);
    assert_eq!(f.user("px01").name.as_deref(), Some("One"));
    // A PUT that changes nothing commits nothing.
    let rev = f.service.head().unwrap().revision;
    let same = ok(&f.get("Users/px01", &[]), 200);
    ok(&f.call("PUT", "Users/px01", same), 200);
    assert_eq!(f.service.head().unwrap().revision, rev);
    // userName never changes.
    let a = f.call(
        "PATCH",
        "Users/px01",
        json!({"Operations": [{"op": "replace", "path": "userName", "value": "px01-renamed"}]}),
    );
    scim_error(&a, 400, Some("mutability"));
}

/// Every malformed request: a SCIM error naming what is wrong, never a
/// 500, nothing changed.
#[test]
fn bad_requests_get_scim_errors_that_say_what_is_wrong() {
    let f = sam();
    let rev = f.service.head().unwrap().revision;
    let filters = [
        r#"userName eq"#,
        r#"userName zz "a""#,
        r#"(userName eq "a""#,
        r#"emails[type eq "work""#,
        r#"userName eq "a" userName eq "b""#,
        "userName eq 'a'",
        "userName co true",
    ];
    for flt in filters {
        let a = f.get("Users", &[("filter", flt)]);
        scim_error(&a, 400, Some("invalidFilter"));
    }
    for (q, v) in [("startIndex", "one"), ("count", "1.5x")] {
        scim_error(&f.get("Users", &[(q, v)]), 400, Some("invalidValue"));
    }
    let bad_bodies = [
        (
            "POST",
            "Users",
            json!("not an object"),
            Some("invalidSyntax"),
        ),
        (
            "POST",
            "Users",
            json!({"emails": [{"value": "x@y.z"}]}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": "a b", "emails": [{"value": "x@y.z"}]}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": "nomail"}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": "q", "emails": [{"value": "not-an-email"}]}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": "q", "emails": "q@x.y"}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": "q", "emails": [{"value": "q@x.y"}], "active": "maybe"}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": "q", "emails": [{"value": "q@x.y"}], "name": "Q"}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"schemas": ["urn:example:Thing"], "userName": "q", "emails": [{"value": "q@x.y"}]}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": 7, "emails": [{"value": "q@x.y"}]}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Users",
            json!({"userName": "pat2", "emails": [{"value": "pat@acme.example"}]}),
            Some("uniqueness"),
        ),
        (
            "POST",
            "Groups",
            json!({"members": []}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Groups",
            json!({"displayName": "G", "members": [{"value": "analysts", "type": "Group"}]}),
            Some("invalidValue"),
        ),
        (
            "POST",
            "Groups",
            json!({"displayName": "Analysts"}),
            Some("uniqueness"),
        ),
        (
            "PATCH",
            "Users/pat",
            json!({"Operations": [{"op": "jump"}]}),
            Some("invalidSyntax"),
        ),
        (
            "PATCH",
            "Users/pat",
            json!({"Operations": [{"op": "remove"}]}),
            Some("noTarget"),
        ),
        (
            "PATCH",
            "Users/pat",
            json!({"Operations": [{"op": "replace", "path": "emails[type eq", "value": 1}]}),
            Some("invalidPath"),
        ),
        (
            "PATCH",
            "Users/pat",
            json!({"Operations": [{"op": "replace", "path": "meta", "value": {}}]}),
            Some("mutability"),
        ),
        (
            "PATCH",
            "Users/pat",
            json!({"Operations": [{"op": "replace", "path": "active", "value": 3}]}),
            Some("invalidValue"),
        ),
        (
            "PATCH",
            "Users/pat",
            json!({"schemas": ["urn:nope"], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
            Some("invalidSyntax"),
        ),
        (
            "PATCH",
            "Users/pat",
            json!({"Operations": []}),
            Some("invalidSyntax"),
        ),
    ];
    for (method, path, body, kind) in bad_bodies {
        let a = f.call(method, path, body.clone());
        let status = if kind == Some("uniqueness") { 409 } else { 400 };
        scim_error(&a, status, kind);
        let _ = body;
    }
    let raw = f.provider.handle(&ScimRequest {
        method: "POST",
        org: "acme",
        rest: vec!["Users".into()],
        query: &[],
        body: b"{not json",
        if_match: None,
        if_none_match: None,
        base: BASE.into(),
        principal: Ok(SAM_KEY.into()),
        request_id: None,
    });
    scim_error(&raw, 400, Some("invalidSyntax"));
    scim_error(&f.get("Users/nobody", &[]), 404, None);
    scim_error(&f.get("Widgets", &[]), 404, None);
    scim_error(&f.call("POST", "Users/pat", json!({})), 405, None);
    scim_error(&f.get("Me", &[]), 501, None);
    scim_error(&f.call("POST", "Bulk", json!({})), 501, None);
    // An engine refusal: a SCIM error with the engine's reason. Seed
    // 003: a super administrator (zoe, once reactivated) is deactivated
    // only by support, not by an identity provider.
    let a = f.call(
        "PATCH",
        "Users/zoe",
        json!({"Operations": [{"op": "replace", "path": "active", "value": true}]}),
    );
    assert_eq!(a.status, 200, "{:?}", a.body);
    let a = f.call(
        "PATCH",
        "Users/zoe",
        json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}),
    );
    scim_error(&a, 403, None);
    assert!(a.reason.is_some());
    // zoe (deactivated) was reactivated above by sam; the later refusal
    // changed nothing.
    assert_eq!(f.user("zoe").status, UserStatus::Active);
    assert!(f.service.head().unwrap().revision > rev);
}

#[test]
fn discovery_endpoints_describe_the_provider() {
    let f = sam();
    let anonymous = |path: &str| {
        f.send(Call {
            method: "GET",
            org: "acme",
            path,
            query: Vec::new(),
            body: Value::Null,
            principal: None,
            if_match: None,
        })
    };
    let c = ok(&anonymous("ServiceProviderConfig"), 200);
    assert_eq!(c["patch"]["supported"], true);
    assert_eq!(c["bulk"]["supported"], false);
    assert_eq!(c["etag"]["supported"], true);
    let t = ok(&anonymous("ResourceTypes"), 200);
    assert_eq!(t["totalResults"], 2);
    let s = ok(&anonymous("Schemas"), 200);
    assert_eq!(s["totalResults"], 2);
    ok(
        &anonymous("Schemas/urn:ietf:params:scim:schemas:core:2.0:User"),
        200,
    );
    ok(&anonymous("ResourceTypes/Group"), 200);
    scim_error(&anonymous("Schemas/urn:nope"), 404, None);
}
