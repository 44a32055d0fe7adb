//! Users and groups as SCIM shows them (RFC 7643 §4), and back: what a
//! SCIM representation asks of the directory, as operations.
//!
//! A user's SCIM `id` is its username (unique and immutable, as an `id`
//! must be); `userName` is the same value and cannot change. `active` is
//! the account being active: `false` deactivates; `true` reactivates a
//! deactivated account but does not lift a ban or a disabling the
//! directory's administrators made (those stay until one of them acts).
//! A group's `id` is the directory's group id (made for groups SCIM
//! creates); its members are the organization's users.

use portcullis_snapshots::source::{Group, User, plausible_email, valid_id};
use portcullis_snapshots::vocabulary::UserStatus;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::error::ScimError;
use super::filter::field;
use crate::operation::{Operation, UserChanges};

/// The core user schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise user extension: accepted, not kept.
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// `s` as one path segment of a URL.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@' | b'+') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rfc3339(t: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

/// `W/"…"`: a digest of the representation (without `meta`), so the
/// version changes exactly when what a client sees does.
pub fn version(resource: &Value) -> String {
    let digest = Sha256::digest(serde_json::to_vec(resource).unwrap_or_default());
    format!("W/\"{}\"", hex::encode(digest.get(..8).unwrap_or_default()))
}

fn meta(
    resource: &mut Value,
    kind: &str,
    location: String,
    created: Option<i64>,
    modified: Option<i64>,
) {
    let v = version(resource);
    let mut m = Map::new();
    m.insert("resourceType".into(), kind.into());
    if let Some(c) = created.and_then(rfc3339) {
        m.insert("created".into(), c.into());
    }
    if let Some(c) = modified.or(created).and_then(rfc3339) {
        m.insert("lastModified".into(), c.into());
    }
    m.insert("location".into(), location.into());
    m.insert("version".into(), v.into());
    if let Some(o) = resource.as_object_mut() {
        o.insert("meta".into(), Value::Object(m));
    }
}

/// A user as SCIM shows it; `base` is the organization's SCIM base URL.
pub fn user_json(u: &User, base: &str) -> Value {
    let mut v = json!({
        "schemas": [USER_SCHEMA],
        "id": u.username,
        "userName": u.username,
        "active": u.status == UserStatus::Active,
        "emails": [{"value": u.email, "type": "work"}],
    });
    let o = v.as_object_mut();
    if let Some(o) = o {
        if let Some(x) = &u.external_id {
            o.insert("externalId".into(), x.clone().into());
        }
        if let Some(n) = &u.name {
            o.insert("displayName".into(), n.clone().into());
        }
        // The full name is `displayName` (read from `name.formatted` only
        // when a client sends no displayName): shown once, so removing one
        // removes it.
        let mut name = Map::new();
        if let Some(n) = &u.first_name {
            name.insert("givenName".into(), n.clone().into());
        }
        if let Some(n) = &u.last_name {
            name.insert("familyName".into(), n.clone().into());
        }
        if !name.is_empty() {
            o.insert("name".into(), Value::Object(name));
        }
        if let Some(p) = &u.phone {
            o.insert("phoneNumbers".into(), json!([{"value": p, "type": "work"}]));
        }
        if let Some(t) = &u.timezone {
            o.insert("timezone".into(), t.clone().into());
        }
        if let Some(l) = &u.locale {
            o.insert("locale".into(), l.clone().into());
        }
    }
    meta(
        &mut v,
        "User",
        format!("{base}/Users/{}", segment(&u.username)),
        u.created_at.map(|t| t.0),
        u.updated_at.map(|t| t.0),
    );
    v
}

/// A group as SCIM shows it: only the members `shown` keeps (the
/// organization's users; others are not this organization's to see).
pub fn group_json(g: &Group, base: &str, shown: &dyn Fn(&str) -> bool) -> Value {
    let members: Vec<Value> = g
        .members
        .iter()
        .filter_map(|m| m.strip_prefix("user/"))
        .filter(|u| shown(u))
        .map(|u| {
            json!({
                "value": u,
                "type": "User",
                "$ref": format!("{base}/Users/{}", segment(u)),
            })
        })
        .collect();
    let mut v = json!({
        "schemas": [GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.name,
        "members": members,
    });
    if let (Some(x), Some(o)) = (&g.external_id, v.as_object_mut()) {
        o.insert("externalId".into(), x.clone().into());
    }
    meta(
        &mut v,
        "Group",
        format!("{base}/Groups/{}", segment(&g.id)),
        g.created_at.map(|t| t.0),
        g.updated_at.map(|t| t.0),
    );
    v
}

/// Keeps only the attributes asked for (`attributes`), or drops those
/// asked to be left out (`excludedAttributes`); `id`, `schemas` and
/// `meta.resourceType` are always returned (RFC 7643 §7, "returned:
/// always").
pub fn project(resource: &mut Value, attributes: &[String], excluded: &[String]) {
    let Some(o) = resource.as_object_mut() else {
        return;
    };
    let name_of = |a: &str| -> (String, Option<String>) {
        let a = a
            .strip_prefix(USER_SCHEMA)
            .or_else(|| a.strip_prefix(GROUP_SCHEMA))
            .map_or(a, |r| r.trim_start_matches(':'));
        match a.split_once('.') {
            Some((n, s)) => (n.to_string(), Some(s.to_string())),
            None => (a.to_string(), None),
        }
    };
    let always = |k: &str| {
        ["id", "schemas", "userName"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k))
    };
    if !attributes.is_empty() {
        let wanted: Vec<(String, Option<String>)> = attributes.iter().map(|a| name_of(a)).collect();
        o.retain(|k, v| {
            if always(k) {
                return true;
            }
            let subs: Vec<&Option<String>> = wanted
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, s)| s)
                .collect();
            if subs.is_empty() {
                return k == "meta" && {
                    // meta.resourceType is always returned.
                    if let Some(m) = v.as_object_mut() {
                        m.retain(|k, _| k == "resourceType");
                    }
                    true
                };
            }
            if subs.iter().any(|s| s.is_none()) {
                return true;
            }
            let keep = |x: &mut Value| {
                if let Some(m) = x.as_object_mut() {
                    m.retain(|sk, _| {
                        subs.iter()
                            .any(|s| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(sk)))
                    });
                }
            };
            match v {
                Value::Array(items) => items.iter_mut().for_each(keep),
                other => keep(other),
            }
            true
        });
    } else if !excluded.is_empty() {
        for a in excluded {
            let (n, s) = name_of(a);
            if always(&n) {
                continue;
            }
            match s {
                None => o.retain(|k, _| !k.eq_ignore_ascii_case(&n)),
                Some(s) => {
                    for (k, v) in o.iter_mut() {
                        if !k.eq_ignore_ascii_case(&n) {
                            continue;
                        }
                        let drop = |x: &mut Value| {
                            if let Some(m) = x.as_object_mut() {
                                m.retain(|sk, _| !sk.eq_ignore_ascii_case(&s));
                            }
                        };
                        match v {
                            Value::Array(items) => items.iter_mut().for_each(drop),
                            other => drop(other),
                        }
                    }
                }
            }
        }
    }
}

/// What a SCIM user representation says, read as the directory keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserFields {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `displayName`, else `name.formatted`.
    pub name: Option<String>,
    /// `name.givenName`.
    pub first_name: Option<String>,
    /// `name.familyName`.
    pub last_name: Option<String>,
    /// The primary email (else the work one, else the first).
    pub email: Option<String>,
    /// The primary phone number.
    pub phone: Option<String>,
    /// `timezone`.
    pub timezone: Option<String>,
    /// `locale`.
    pub locale: Option<String>,
    /// `active`.
    pub active: Option<bool>,
}

fn string(v: &Value, at: &str) -> Result<Option<String>, ScimError> {
    match field(v, at) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ScimError::invalid_value(format!(
            "{at} is a string, not {other}"
        ))),
    }
}

/// A boolean as SCIM clients send it: `true`, or (Microsoft Entra ID)
/// `"True"`.
pub fn boolean(v: &Value, at: &str) -> Result<Option<bool>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        other => Err(ScimError::invalid_value(format!(
            "{at} is true or false, not {other}"
        ))),
    }
}

/// The chosen value of a multi-valued attribute: the primary one, else
/// the `work` one, else the first.
fn chosen(v: &Value, at: &str) -> Result<Option<String>, ScimError> {
    let items = match field(v, at) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "{at} is a list of {{\"value\": …}}, not {other}"
            )));
        }
    };
    for i in items {
        if !i.is_object() {
            return Err(ScimError::invalid_value(format!(
                "each of {at} is an object with a value, not {i}"
            )));
        }
    }
    let primary = |i: &&Value| {
        field(i, "primary")
            .and_then(|p| boolean(p, "primary").ok().flatten())
            .unwrap_or(false)
    };
    let typed = |i: &&Value| {
        field(i, "type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("work"))
    };
    let pick = items
        .iter()
        .find(primary)
        .or_else(|| items.iter().find(typed))
        .or_else(|| items.first());
    match pick {
        None => Ok(None),
        Some(i) => {
            string(i, "value").map_err(|e| ScimError::invalid_value(format!("{at}: {}", e.detail)))
        }
    }
}

/// Reads a SCIM user. `schemas`, when present, must name the core user
/// schema; attributes this directory does not keep (the enterprise
/// extension, addresses, titles, …) are accepted and not kept.
pub fn user_fields(v: &Value) -> Result<UserFields, ScimError> {
    if !v.is_object() {
        return Err(ScimError::invalid_syntax("a user is a JSON object"));
    }
    check_schemas(v, USER_SCHEMA)?;
    let user_name = string(v, "userName")?.ok_or_else(|| {
        ScimError::invalid_value("userName is required (the directory's username)")
    })?;
    if !valid_id(&user_name) {
        return Err(ScimError::invalid_value(format!(
            "userName {user_name:?} cannot be a username: at most 256 characters, no '/', no spaces"
        )));
    }
    let name = field(v, "name");
    if let Some(n) = name
        && !n.is_object()
        && !n.is_null()
    {
        return Err(ScimError::invalid_value(format!(
            "name is an object (givenName, familyName, formatted), not {n}"
        )));
    }
    let sub = |s: &str| match name {
        Some(n) if n.is_object() => string(n, s),
        _ => Ok(None),
    };
    let active = match field(v, "active") {
        None => None,
        Some(a) => boolean(a, "active")?,
    };
    let email = chosen(v, "emails")?;
    if let Some(e) = &email
        && !plausible_email(e)
    {
        return Err(ScimError::invalid_value(format!(
            "emails: {e:?} is not an email address"
        )));
    }
    Ok(UserFields {
        external_id: string(v, "externalId")?,
        name: string(v, "displayName")?.or(sub("formatted")?),
        first_name: sub("givenName")?,
        last_name: sub("familyName")?,
        email,
        phone: chosen(v, "phoneNumbers")?,
        timezone: string(v, "timezone")?,
        locale: string(v, "locale")?,
        active,
        user_name,
    })
}

/// Refuses a representation whose `schemas` does not name `core`.
pub fn check_schemas(v: &Value, core: &str) -> Result<(), ScimError> {
    match field(v, "schemas") {
        None => Ok(()),
        Some(Value::Array(s))
            if s.iter()
                .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(core))) =>
        {
            Ok(())
        }
        Some(other) => Err(ScimError::invalid_value(format!(
            "schemas is {other}; it must list {core:?}"
        ))),
    }
}

/// The user a SCIM create makes in `org`. The identity provider vouches
/// for the address it provisions (a Super Administrator configured it),
/// so it counts as verified; a later change of address needs verifying
/// again, as every change does (seed 000).
pub fn new_user(f: &UserFields, org: &str) -> Result<User, ScimError> {
    let email = match &f.email {
        Some(e) => e.clone(),
        None if plausible_email(&f.user_name) => f.user_name.clone(),
        None => {
            return Err(ScimError::invalid_value(
                "emails: the directory needs an email address for every user (or a userName that is one)",
            ));
        }
    };
    Ok(User {
        username: f.user_name.clone(),
        name: f.name.clone(),
        first_name: f.first_name.clone(),
        last_name: f.last_name.clone(),
        email,
        phone: f.phone.clone(),
        organization: org.to_string(),
        timezone: f.timezone.clone(),
        locale: f.locale.clone(),
        status: if f.active == Some(false) {
            UserStatus::Deactivated
        } else {
            UserStatus::Active
        },
        allow_login: true,
        email_verified: true,
        sso: false,
        expires_at: None,
        last_login: None,
        start_page: None,
        admin_role: None,
        sp_role: None,
        external_id: f.external_id.clone(),
        created_at: None,
        updated_at: None,
    })
}

/// The operations that make `old` what `f` says (a replace: an attribute
/// left out is cleared, except the address, which the directory needs).
pub fn user_changes(old: &User, f: &UserFields) -> Result<Vec<Operation>, ScimError> {
    if f.user_name != old.username {
        return Err(ScimError::mutability(format!(
            "userName is the username {:?}, which never changes (seed 000): create a new user instead",
            old.username
        )));
    }
    let mut set = UserChanges::default();
    let text = |slot: &mut Option<String>, old: &Option<String>, new: &Option<String>| {
        if old != new {
            *slot = Some(new.clone().unwrap_or_default());
        }
    };
    text(&mut set.name, &old.name, &f.name);
    text(&mut set.first_name, &old.first_name, &f.first_name);
    text(&mut set.last_name, &old.last_name, &f.last_name);
    text(&mut set.phone, &old.phone, &f.phone);
    text(&mut set.timezone, &old.timezone, &f.timezone);
    text(&mut set.locale, &old.locale, &f.locale);
    text(&mut set.external_id, &old.external_id, &f.external_id);
    if let Some(e) = &f.email
        && !e.eq_ignore_ascii_case(&old.email)
    {
        set.email = Some(e.clone());
    }
    let mut ops = Vec::new();
    if set != UserChanges::default() {
        ops.push(Operation::UpdateUser {
            username: old.username.clone(),
            set,
        });
    }
    match (old.status, f.active) {
        (UserStatus::Active, Some(false)) => ops.push(Operation::DeactivateUser {
            username: old.username.clone(),
        }),
        (UserStatus::Deactivated, Some(true)) => ops.push(Operation::ReactivateUser {
            username: old.username.clone(),
        }),
        _ => {}
    }
    Ok(ops)
}

/// What a SCIM group representation says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupFields {
    /// `displayName`.
    pub name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// The member user ids, in order, once each.
    pub members: Vec<String>,
}

/// Reads a SCIM group.
pub fn group_fields(v: &Value) -> Result<GroupFields, ScimError> {
    if !v.is_object() {
        return Err(ScimError::invalid_syntax("a group is a JSON object"));
    }
    check_schemas(v, GROUP_SCHEMA)?;
    let name = string(v, "displayName")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    let mut members = Vec::new();
    match field(v, "members") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for m in items {
                if let Some(t) = field(m, "type").and_then(Value::as_str)
                    && !t.eq_ignore_ascii_case("User")
                {
                    return Err(ScimError::invalid_value(format!(
                        "members: a {t:?} cannot be a member; groups hold users only (groups cannot be members of groups)"
                    )));
                }
                let id = string(m, "value")?.ok_or_else(|| {
                    ScimError::invalid_value("members: each member has a value (a user's id)")
                })?;
                if !members.contains(&id) {
                    members.push(id);
                }
            }
        }
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "members is a list of {{\"value\": user id}}, not {other}"
            )));
        }
    }
    Ok(GroupFields {
        name,
        external_id: string(v, "externalId")?,
        members,
    })
}

/// The operations that make `old` what `f` says. Members `f` cannot see
/// (`shown` false: not this organization's users) are kept.
pub fn group_changes(old: &Group, f: &GroupFields, shown: &dyn Fn(&str) -> bool) -> Vec<Operation> {
    let mut ops = Vec::new();
    if old.name != f.name || old.external_id != f.external_id {
        let mut g = old.clone();
        g.name = f.name.clone();
        g.external_id = f.external_id.clone();
        ops.push(Operation::UpdateGroup { group: g });
    }
    let want: std::collections::HashSet<String> =
        f.members.iter().map(|u| format!("user/{u}")).collect();
    let have: std::collections::HashSet<&String> = old.members.iter().collect();
    for m in &old.members {
        let visible = m.strip_prefix("user/").is_some_and(shown);
        if visible && !want.contains(m) {
            ops.push(Operation::RemoveGroupMember {
                group: old.id.clone(),
                member: m.clone(),
            });
        }
    }
    for u in &f.members {
        let m = format!("user/{u}");
        if !have.contains(&m) {
            ops.push(Operation::AddGroupMember {
                group: old.id.clone(),
                member: m,
            });
        }
    }
    ops
}
