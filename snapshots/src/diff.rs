//! What changed between two directories: what an operator reviews before
//! pushing a snapshot. Records are matched by their id (grants and
//! permissions by their whole content, since they have no id).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::source::Directory;

/// One field of a record that changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// Field name.
    pub field: String,
    /// Old value (`null` when absent).
    pub old: Value,
    /// New value (`null` when absent).
    pub new: Value,
}

/// A record present on both sides with different fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Changed {
    /// The record's reference, e.g. `user/olivia`.
    pub key: String,
    /// Its changed fields.
    pub fields: Vec<FieldChange>,
}

/// Differences in one section of the directory.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SectionDiff {
    /// Section name, as in the source (`users`, `grants`, …).
    pub section: &'static str,
    /// References of added records.
    pub added: Vec<String>,
    /// References of removed records.
    pub removed: Vec<String>,
    /// Records whose fields changed.
    pub changed: Vec<Changed>,
}

impl SectionDiff {
    /// Whether nothing changed in this section.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Every difference between two directories, section by section; sections
/// without differences are left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DirectoryDiff {
    /// Sections with differences.
    pub sections: Vec<SectionDiff>,
}

impl DirectoryDiff {
    /// Whether the directories are the same.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// A review-friendly rendering, one line per record.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            out.push_str(&format!(
                "{}: +{} -{} ~{}\n",
                s.section,
                s.added.len(),
                s.removed.len(),
                s.changed.len()
            ));
            for a in &s.added {
                out.push_str(&format!("  + {a}\n"));
            }
            for r in &s.removed {
                out.push_str(&format!("  - {r}\n"));
            }
            for c in &s.changed {
                let fields: Vec<String> = c
                    .fields
                    .iter()
                    .map(|f| format!("{}: {} → {}", f.field, f.old, f.new))
                    .collect();
                out.push_str(&format!("  ~ {}: {}\n", c.key, fields.join("; ")));
            }
        }
        if out.is_empty() {
            out.push_str("no differences\n");
        }
        out
    }
}

fn keyed<T: Serialize>(
    section: &'static str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
) -> SectionDiff {
    let as_map = |items: &[T]| -> BTreeMap<String, Value> {
        items
            .iter()
            .map(|i| (key(i), serde_json::to_value(i).unwrap_or(Value::Null)))
            .collect()
    };
    let (o, n) = (as_map(old), as_map(new));
    let mut d = SectionDiff {
        section,
        ..SectionDiff::default()
    };
    for (k, nv) in &n {
        match o.get(k) {
            None => d.added.push(k.clone()),
            Some(ov) if ov != nv => d.changed.push(Changed {
                key: k.clone(),
                fields: field_changes(ov, nv),
            }),
            Some(_) => {}
        }
    }
    d.removed = o.keys().filter(|k| !n.contains_key(*k)).cloned().collect();
    d
}

fn field_changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let fields: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    fields
        .into_iter()
        .filter_map(|f| {
            let (ov, nv) = (
                o.get(f).cloned().unwrap_or_else(|| default_of(f)),
                n.get(f).cloned().unwrap_or_else(|| default_of(f)),
            );
            (ov != nv).then(|| FieldChange {
                field: f.clone(),
                old: ov,
                new: nv,
            })
        })
        .collect()
}

/// Records without ids: a set difference of their one-line renderings.
fn unkeyed(section: &'static str, old: Vec<String>, new: Vec<String>) -> SectionDiff {
    let (o, n): (BTreeSet<String>, BTreeSet<String>) =
        (old.into_iter().collect(), new.into_iter().collect());
    SectionDiff {
        section,
        added: n.difference(&o).cloned().collect(),
        removed: o.difference(&n).cloned().collect(),
        changed: Vec::new(),
    }
}

/// Compares two directories.
pub fn diff(old: &Directory, new: &Directory) -> DirectoryDiff {
    let grant = |g: &crate::source::Grant| format!("{} {} on {}", g.principal, g.role, g.on);
    let perm = |p: &crate::source::PermissionGrant| {
        let mut s = format!("{} {}", p.principal, p.permission.name());
        if let Some(e) = p.entity {
            s.push(' ');
            s.push_str(e.name());
        }
        if let Some(on) = &p.on {
            s.push_str(" on ");
            s.push_str(on);
        }
        s
    };
    let sections = vec![
        keyed(
            "organizations",
            &old.organizations,
            &new.organizations,
            |x| format!("org/{}", x.id),
        ),
        keyed("environments", &old.environments, &new.environments, |x| {
            format!("env/{}", x.id)
        }),
        keyed("catalogs", &old.catalogs, &new.catalogs, |x| {
            format!("catalog/{}", x.id)
        }),
        keyed("objects", &old.objects, &new.objects, |x| {
            format!("object/{}", x.id)
        }),
        keyed("users", &old.users, &new.users, |x| {
            format!("user/{}", x.username)
        }),
        keyed(
            "service_accounts",
            &old.service_accounts,
            &new.service_accounts,
            |x| format!("service/{}", x.id),
        ),
        keyed("api_keys", &old.api_keys, &new.api_keys, |x| {
            format!("apikey/{}", x.id)
        }),
        keyed("groups", &old.groups, &new.groups, |x| {
            format!("group/{}", x.id)
        }),
        keyed("teams", &old.teams, &new.teams, |x| {
            format!("team/{}", x.id)
        }),
        keyed("custom_roles", &old.custom_roles, &new.custom_roles, |x| {
            format!("role/{}", x.id)
        }),
        unkeyed(
            "grants",
            old.grants.iter().map(grant).collect(),
            new.grants.iter().map(grant).collect(),
        ),
        unkeyed(
            "permissions",
            old.permissions.iter().map(perm).collect(),
            new.permissions.iter().map(perm).collect(),
        ),
    ];
    DirectoryDiff {
        sections: sections.into_iter().filter(|s| !s.is_empty()).collect(),
    }
}

/// The value a field has when the source leaves it out (see FORMAT.md), so
/// a diff says `"active" → "disabled"` rather than `null → "disabled"`.
/// Optional fields without a default stay `null` (absent).
fn default_of(field: &str) -> Value {
    match field {
        "status" => Value::from("active"),
        "allow_login" => Value::from(true),
        "email_verified" | "sso" | "revoked" => Value::from(false),
        "tier" => Value::from("other"),
        "kind" => Value::from("internal"),
        "default_access" => Value::from("reader"),
        "members" => Value::Array(Vec::new()),
        _ => Value::Null,
    }
}
