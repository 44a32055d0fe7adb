//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's representation,
//! in the dialects identity providers send: Okta's (lower-case ops,
//! `replace` with a value object), and Microsoft Entra ID's (capitalised
//! `Replace`/`Add`/`Remove`, booleans as `"False"`, members removed with a
//! value list, `members[value eq "…"]` paths, pathless replaces whose keys
//! are dotted paths or schema-qualified names). The result is read again
//! as a whole representation, so a PATCH means exactly what the replace
//! of its result would.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, Filter, Op, Path, field, parse_path};
use super::resource::{ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// The PATCH message schema.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Add,
    Remove,
    Replace,
}

/// One PATCH operation as sent: `op`, `path`, `value`.
type Sent = (String, Option<String>, Option<Value>);

/// The operations of a PATCH body, checked.
pub fn operations(body: &Value) -> Result<Vec<Sent>, ScimError> {
    if !body.is_object() {
        return Err(ScimError::invalid_syntax("a PATCH body is a JSON object"));
    }
    if let Some(s) = field(body, "schemas") {
        let ok = s.as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x.as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
        if !ok {
            return Err(ScimError::invalid_syntax(format!(
                "schemas is {s}; a PATCH names {PATCH_SCHEMA:?}"
            )));
        }
    }
    let ops = match field(body, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => {
            return Err(ScimError::invalid_syntax(
                "a PATCH has Operations: a non-empty list of {\"op\", \"path\", \"value\"}",
            ));
        }
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::too_many(format!(
            "{} operations in one PATCH, over {MAX_OPERATIONS}: split it",
            ops.len()
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, o)| {
            let op = field(o, "op").and_then(Value::as_str).ok_or_else(|| {
                ScimError::invalid_syntax(format!(
                    "Operations[{i}] has no op (add, remove or replace)"
                ))
            })?;
            let path = match field(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(other) => {
                    return Err(ScimError::invalid_path(format!(
                        "Operations[{i}].path is a string, not {other}"
                    )));
                }
            };
            Ok((op.to_string(), path, field(o, "value").cloned()))
        })
        .collect()
}

/// Applies a PATCH body to `resource` (the representation the provider
/// shows, `meta` and all); `core` is the resource's core schema.
pub fn apply(resource: &mut Value, body: &Value, core: &str) -> Result<(), ScimError> {
    for (i, (op, path, value)) in operations(body)?.into_iter().enumerate() {
        let kind = match op.to_ascii_lowercase().as_str() {
            "add" => Kind::Add,
            "remove" => Kind::Remove,
            "replace" => Kind::Replace,
            other => {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}].op {other:?} is not add, remove or replace"
                )));
            }
        };
        let at = |e: ScimError| ScimError {
            detail: format!("Operations[{i}]: {}", e.detail),
            ..e
        };
        one(resource, kind, path.as_deref(), value, core).map_err(at)?;
    }
    Ok(())
}

fn one(
    resource: &mut Value,
    kind: Kind,
    path: Option<&str>,
    value: Option<Value>,
    core: &str,
) -> Result<(), ScimError> {
    let Some(path) = path else {
        if kind == Kind::Remove {
            return Err(ScimError::no_target("remove needs a path"));
        }
        let Some(Value::Object(map)) = value else {
            return Err(ScimError::invalid_syntax(
                "an add or replace without a path has an object of attributes as its value",
            ));
        };
        for (k, v) in map {
            // An extension's attributes, whole.
            if is_extension(&k) && v.is_object() {
                let slot = entry(resource, &k);
                merge(slot, v, kind);
                continue;
            }
            // Entra: keys that are paths (`name.givenName`,
            // `urn:…:User:userName`, `urn:…:enterprise:2.0:User:department`).
            let p = parse_path(&k)?;
            at_path(resource, kind, &p, Some(v), core)?;
        }
        return Ok(());
    };
    let p = parse_path(path)?;
    at_path(resource, kind, &p, value, core)
}

fn is_extension(k: &str) -> bool {
    k.eq_ignore_ascii_case(ENTERPRISE_SCHEMA)
        || (k.len() > 4
            && k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
            && !k.eq_ignore_ascii_case(USER_SCHEMA)
            && !k.eq_ignore_ascii_case(GROUP_SCHEMA)
            && k.rsplit(':').next().is_some_and(|last| {
                // `urn:…:User` is a schema; `urn:…:User:attr` an attribute.
                last.eq_ignore_ascii_case("User") || last.eq_ignore_ascii_case("Group")
            }))
}

/// The object the attribute lives in: the resource, or an extension's
/// object within it.
fn container<'a>(
    resource: &'a mut Value,
    attr: &AttrPath,
    core: &str,
) -> Result<&'a mut Value, ScimError> {
    match &attr.urn {
        None => Ok(resource),
        Some(u) if u.eq_ignore_ascii_case(core) => Ok(resource),
        Some(u) if u.eq_ignore_ascii_case(USER_SCHEMA) || u.eq_ignore_ascii_case(GROUP_SCHEMA) => {
            Err(ScimError::invalid_path(format!(
                "{u} is not this resource's schema"
            )))
        }
        Some(u) => Ok(entry(resource, u)),
    }
}

/// The value of `name` in `object` (made an empty object when absent),
/// found without case.
fn entry<'a>(object: &'a mut Value, name: &str) -> &'a mut Value {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let key = object
        .as_object()
        .and_then(|o| o.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned())
        .unwrap_or_else(|| name.to_string());
    match object {
        Value::Object(o) => o.entry(key).or_insert(Value::Null),
        // Made an object above.
        other => other,
    }
}

fn remove_key(object: &mut Value, name: &str) {
    if let Some(o) = object.as_object_mut() {
        o.retain(|k, _| !k.eq_ignore_ascii_case(name));
    }
}

fn merge(slot: &mut Value, value: Value, kind: Kind) {
    match (slot, value) {
        (slot @ Value::Object(_), Value::Object(m)) => {
            for (k, v) in m {
                let s = entry(slot, &k);
                if kind == Kind::Add && s.is_array() {
                    append(s, v);
                } else {
                    *s = v;
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Adds values to a multi-valued attribute, once each.
fn append(slot: &mut Value, value: Value) {
    let items = match value {
        Value::Array(a) => a,
        v => vec![v],
    };
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(have) = slot {
        for v in items {
            let same = |h: &Value| match (field(h, "value"), field(&v, "value")) {
                (Some(a), Some(b)) => a == b,
                _ => *h == v,
            };
            if !have.iter().any(same) {
                have.push(v);
            }
        }
    }
}

fn readonly(attr: &AttrPath) -> bool {
    ["id", "meta", "schemas"]
        .iter()
        .any(|x| attr.name.eq_ignore_ascii_case(x))
}

fn at_path(
    resource: &mut Value,
    kind: Kind,
    p: &Path,
    value: Option<Value>,
    core: &str,
) -> Result<(), ScimError> {
    if readonly(&p.attr) {
        return Err(ScimError::mutability(format!(
            "{} is set by the service provider, not by PATCH",
            p.attr.name
        )));
    }
    if kind != Kind::Remove && value.is_none() {
        return Err(ScimError::invalid_syntax(format!(
            "{} of {} needs a value",
            if kind == Kind::Add { "add" } else { "replace" },
            p.attr.name
        )));
    }
    let holder = container(resource, &p.attr, core)?;
    let Some(filter) = &p.filter else {
        // `attr` or `attr.sub`.
        return match (&p.attr.sub, kind) {
            (None, Kind::Remove) => {
                match value {
                    // Entra: remove these values of a multi-valued attribute.
                    Some(v) if field(holder, &p.attr.name).is_some_and(Value::is_array) => {
                        let gone: Vec<Value> = match v {
                            Value::Array(a) => a,
                            v => vec![v],
                        };
                        let slot = entry(holder, &p.attr.name);
                        if let Value::Array(have) = slot {
                            have.retain(|h| {
                                !gone
                                    .iter()
                                    .any(|g| match (field(h, "value"), field(g, "value")) {
                                        (Some(a), Some(b)) => a == b,
                                        _ => h == g,
                                    })
                            });
                        }
                    }
                    _ => remove_key(holder, &p.attr.name),
                }
                Ok(())
            }
            (None, _) => {
                let slot = entry(holder, &p.attr.name);
                match (kind, value) {
                    (Kind::Add, Some(v)) if slot.is_array() || v.is_array() => append(slot, v),
                    (Kind::Add, Some(v @ Value::Object(_))) if slot.is_object() => {
                        merge(slot, v, kind)
                    }
                    (_, Some(v)) => *slot = v,
                    (_, None) => {}
                }
                Ok(())
            }
            (Some(sub), Kind::Remove) => {
                let slot = entry(holder, &p.attr.name);
                match slot {
                    Value::Array(items) => items.iter_mut().for_each(|i| remove_key(i, sub)),
                    other => remove_key(other, sub),
                }
                Ok(())
            }
            (Some(sub), _) => {
                let slot = entry(holder, &p.attr.name);
                if slot.is_array() {
                    return Err(ScimError::invalid_path(format!(
                        "{}.{sub}: {} has many values; say which with {}[…].{sub}",
                        p.attr.name, p.attr.name, p.attr.name
                    )));
                }
                *entry(slot, sub) = value.unwrap_or(Value::Null);
                Ok(())
            }
        };
    };
    let slot = entry(holder, &p.attr.name);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    let Value::Array(items) = slot else {
        return Err(ScimError::invalid_path(format!(
            "{}[…]: {} is not multi-valued",
            p.attr.name, p.attr.name
        )));
    };
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| filter.matches(i))
        .map(|(n, _)| n)
        .collect();
    match kind {
        Kind::Remove => {
            match &p.sub {
                Some(sub) => {
                    for n in &matched {
                        if let Some(i) = items.get_mut(*n) {
                            remove_key(i, sub);
                        }
                    }
                }
                None => {
                    let mut n = 0;
                    items.retain(|_| {
                        let keep = !matched.contains(&n);
                        n += 1;
                        keep
                    });
                }
            }
            Ok(())
        }
        Kind::Add | Kind::Replace => {
            let value = value.unwrap_or(Value::Null);
            if matched.is_empty() {
                // No value matches: make one when the filter says what it
                // is (`emails[type eq "work"].value`), as Entra expects.
                let Some(seed) = seed_of(filter) else {
                    return Err(ScimError::no_target(format!(
                        "no value of {} matches the path's filter",
                        p.attr.name
                    )));
                };
                let mut item = seed;
                match &p.sub {
                    Some(sub) => *entry(&mut item, sub) = value,
                    None => merge(&mut item, value, Kind::Replace),
                }
                items.push(item);
                return Ok(());
            }
            for n in matched {
                if let Some(i) = items.get_mut(n) {
                    match &p.sub {
                        Some(sub) => *entry(i, sub) = value.clone(),
                        None if kind == Kind::Add => merge(i, value.clone(), Kind::Add),
                        None => *i = value.clone(),
                    }
                }
            }
            Ok(())
        }
    }
}

/// The value a filter of `a eq "x"` conditions (joined by `and`) describes.
fn seed_of(f: &Filter) -> Option<Value> {
    match f {
        Filter::Compare(p, Op::Eq, v) if p.urn.is_none() && p.sub.is_none() => {
            let mut m = Map::new();
            m.insert(p.name.clone(), v.clone());
            Some(Value::Object(m))
        }
        Filter::And(a, b) => {
            let (Value::Object(mut x), Value::Object(y)) = (seed_of(a)?, seed_of(b)?) else {
                return None;
            };
            x.extend(y);
            Some(Value::Object(x))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA], "id": "pat", "userName": "pat", "active": true,
            "name": {"givenName": "Pat"},
            "emails": [{"value": "pat@example.com", "type": "work", "primary": true}],
        })
    }

    fn patch(r: &mut Value, ops: Value) -> Result<(), ScimError> {
        apply(
            r,
            &json!({"schemas": [PATCH_SCHEMA], "Operations": ops}),
            USER_SCHEMA,
        )
    }

    #[test]
    fn okta_deactivates_with_a_value_object() {
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .unwrap();
        assert_eq!(u["active"], json!(false));
    }

    #[test]
    fn entra_capitalises_ops_and_sends_booleans_as_strings() {
        let mut u = user();
        patch(&mut u, json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "pat@new.example"},
            {"op": "Add", "path": "name.familyName", "value": "Doe"},
            {"op": "Replace", "value": {"name.givenName": "Patricia", "urn:ietf:params:scim:schemas:core:2.0:User:timezone": "Europe/Paris"}},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Ops"},
        ])).unwrap();
        assert_eq!(u["active"], json!("False"));
        assert_eq!(u["emails"][0]["value"], json!("pat@new.example"));
        assert_eq!(u["name"]["familyName"], json!("Doe"));
        assert_eq!(u["name"]["givenName"], json!("Patricia"));
        assert_eq!(u["timezone"], json!("Europe/Paris"));
        assert_eq!(u[ENTERPRISE_SCHEMA]["department"], json!("Ops"));
    }

    #[test]
    fn a_filtered_path_with_no_match_makes_the_value_it_describes() {
        let mut u = user();
        patch(&mut u, json!([{"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555"}])).unwrap();
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "work", "value": "+1 555"}])
        );
        let e = patch(
            &mut u,
            json!([{"op": "replace", "path": "emails[value sw \"x\"].value", "value": "a@b.c"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type.as_deref(), Some("noTarget"));
    }

    #[test]
    fn group_members_added_and_removed_in_both_dialects() {
        let mut g = json!({"schemas": [GROUP_SCHEMA], "id": "g", "displayName": "G", "members": [{"value": "a"}, {"value": "b"}, {"value": "c"}]});
        let ops = |o: Value| json!({"schemas": [PATCH_SCHEMA], "Operations": o});
        apply(&mut g, &ops(json!([{"op": "add", "path": "members", "value": [{"value": "d"}, {"value": "a"}]}])), GROUP_SCHEMA).unwrap();
        apply(
            &mut g,
            &ops(json!([{"op": "remove", "path": "members[value eq \"b\"]"}])),
            GROUP_SCHEMA,
        )
        .unwrap();
        apply(
            &mut g,
            &ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "c"}]}])),
            GROUP_SCHEMA,
        )
        .unwrap();
        let ids: Vec<&str> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "d"]);
        apply(
            &mut g,
            &ops(json!([{"op": "replace", "path": "members", "value": []}])),
            GROUP_SCHEMA,
        )
        .unwrap();
        assert_eq!(g["members"], json!([]));
    }

    #[test]
    fn bad_patches_say_what_is_wrong() {
        let mut u = user();
        for (ops, kind) in [
            (json!([{"op": "move", "path": "active"}]), "invalidSyntax"),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails.value", "value": "x"}]),
                "invalidPath",
            ),
            (json!([{"op": "add", "path": "title"}]), "invalidSyntax"),
            (json!([{"op": "replace", "value": "x"}]), "invalidSyntax"),
            (json!([]), "invalidSyntax"),
        ] {
            let e = patch(&mut u, ops.clone()).unwrap_err();
            assert_eq!(e.scim_type.as_deref(), Some(kind), "{ops}: {}", e.detail);
        }
        let e = apply(&mut u, &json!({"Operations": "x"}), USER_SCHEMA).unwrap_err();
        assert_eq!(e.status, 400);
    }
}
