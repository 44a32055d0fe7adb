//! What identity providers look users and groups up by, indexed per
//! organization: the users and groups of each organization in a stable
//! order (for paging), and `externalId`, email and group name to id. Kept
//! current by the rows each revision's change wrote (a listener of the
//! service), rebuilt from the directory only when a revision replaced it
//! whole (the first one, an import). The index names candidates; every
//! answer is checked against the directory at the head, so an index a
//! moment behind the head never answers wrong — at most, for that moment,
//! without a just-written entity.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use portcullis_snapshots::source::{Directory, Group, User};

use crate::operation::Kind;
use crate::service::{Listener, Revision};

#[derive(Clone, Debug, PartialEq, Eq)]
struct UserEntry {
    organization: String,
    external_id: Option<String>,
    email: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct GroupEntry {
    organization: Option<String>,
    external_id: Option<String>,
    name: String,
}

/// The index itself.
#[derive(Debug, Default)]
pub struct Index {
    /// Whether it reflects a directory (false: rebuild from the head).
    built: bool,
    users: HashMap<String, UserEntry>,
    users_by_org: HashMap<String, BTreeSet<String>>,
    user_by_external: HashMap<(String, String), String>,
    users_by_email: HashMap<String, BTreeSet<String>>,
    users_by_lower: HashMap<String, BTreeSet<String>>,
    groups: HashMap<String, GroupEntry>,
    groups_by_org: HashMap<String, BTreeSet<String>>,
    group_by_external: HashMap<(String, String), String>,
    group_by_name: HashMap<String, String>,
}

impl Index {
    fn forget_user(&mut self, username: &str) {
        let Some(old) = self.users.remove(username) else {
            return;
        };
        if let Some(s) = self.users_by_org.get_mut(&old.organization) {
            s.remove(username);
        }
        if let Some(x) = old.external_id {
            let k = (old.organization.clone(), x);
            if self.user_by_external.get(&k).is_some_and(|u| u == username) {
                self.user_by_external.remove(&k);
            }
        }
        for (map, k) in [
            (&mut self.users_by_email, old.email.to_lowercase()),
            (&mut self.users_by_lower, username.to_lowercase()),
        ] {
            if let Some(s) = map.get_mut(&k) {
                s.remove(username);
                if s.is_empty() {
                    map.remove(&k);
                }
            }
        }
    }

    fn put_user(&mut self, u: &User) {
        self.forget_user(&u.username);
        let entry = UserEntry {
            organization: u.organization.clone(),
            external_id: u.external_id.clone(),
            email: u.email.clone(),
        };
        self.users_by_org
            .entry(u.organization.clone())
            .or_default()
            .insert(u.username.clone());
        if let Some(x) = &u.external_id {
            self.user_by_external
                .insert((u.organization.clone(), x.clone()), u.username.clone());
        }
        self.users_by_email
            .entry(u.email.to_lowercase())
            .or_default()
            .insert(u.username.clone());
        self.users_by_lower
            .entry(u.username.to_lowercase())
            .or_default()
            .insert(u.username.clone());
        self.users.insert(u.username.clone(), entry);
    }

    fn forget_group(&mut self, id: &str) {
        let Some(old) = self.groups.remove(id) else {
            return;
        };
        if let Some(org) = &old.organization {
            if let Some(s) = self.groups_by_org.get_mut(org) {
                s.remove(id);
            }
            if let Some(x) = old.external_id {
                let k = (org.clone(), x);
                if self.group_by_external.get(&k).is_some_and(|g| g == id) {
                    self.group_by_external.remove(&k);
                }
            }
        }
        let n = old.name.to_lowercase();
        if self.group_by_name.get(&n).is_some_and(|g| g == id) {
            self.group_by_name.remove(&n);
        }
    }

    fn put_group(&mut self, g: &Group) {
        self.forget_group(&g.id);
        if let Some(org) = &g.organization {
            self.groups_by_org
                .entry(org.clone())
                .or_default()
                .insert(g.id.clone());
            if let Some(x) = &g.external_id {
                self.group_by_external
                    .insert((org.clone(), x.clone()), g.id.clone());
            }
        }
        self.group_by_name
            .insert(g.name.to_lowercase(), g.id.clone());
        self.groups.insert(
            g.id.clone(),
            GroupEntry {
                organization: g.organization.clone(),
                external_id: g.external_id.clone(),
                name: g.name.clone(),
            },
        );
    }

    /// Builds it from `dir` whole.
    fn rebuild(&mut self, dir: &Directory) {
        *self = Index::default();
        for u in &dir.users {
            self.put_user(u);
        }
        for g in &dir.groups {
            self.put_group(g);
        }
        self.built = true;
    }

    /// The usernames of `org`, in order, from the `skip`th, at most `take`.
    pub fn users_of(&self, org: &str) -> impl Iterator<Item = &String> {
        self.users_by_org.get(org).into_iter().flatten()
    }

    /// How many users `org` has.
    pub fn user_count(&self, org: &str) -> usize {
        self.users_by_org.get(org).map_or(0, BTreeSet::len)
    }

    /// The user of `org` with this `externalId`.
    pub fn user_by_external(&self, org: &str, external: &str) -> Option<&String> {
        self.user_by_external
            .get(&(org.to_string(), external.to_string()))
    }

    /// The users with this email (any organization; compared without case).
    pub fn users_by_email(&self, email: &str) -> impl Iterator<Item = &String> {
        self.users_by_email
            .get(&email.to_lowercase())
            .into_iter()
            .flatten()
    }

    /// The usernames equal to `name` without case (SCIM's `userName` is
    /// not case-exact; the directory's usernames are).
    pub fn users_by_name(&self, name: &str) -> impl Iterator<Item = &String> {
        self.users_by_lower
            .get(&name.to_lowercase())
            .into_iter()
            .flatten()
    }

    /// The group ids of `org`, in order.
    pub fn groups_of(&self, org: &str) -> impl Iterator<Item = &String> {
        self.groups_by_org.get(org).into_iter().flatten()
    }

    /// How many groups `org` has.
    pub fn group_count(&self, org: &str) -> usize {
        self.groups_by_org.get(org).map_or(0, BTreeSet::len)
    }

    /// The group of `org` with this `externalId`.
    pub fn group_by_external(&self, org: &str, external: &str) -> Option<&String> {
        self.group_by_external
            .get(&(org.to_string(), external.to_string()))
    }

    /// The group with this name (names are unique; compared without case).
    pub fn group_by_name(&self, name: &str) -> Option<&String> {
        self.group_by_name.get(&name.to_lowercase())
    }
}

/// The index, shared by the provider (reading) and the service (telling
/// it of each revision).
#[derive(Clone, Debug, Default)]
pub struct Shared(Arc<Mutex<Index>>);

impl Shared {
    /// The index, current with `dir` when it was not built yet (or the
    /// last revision replaced the directory whole).
    pub fn read(&self, dir: &Directory) -> Option<MutexGuard<'_, Index>> {
        let mut i = self.0.lock().ok()?;
        if !i.built {
            i.rebuild(dir);
        }
        Some(i)
    }
}

impl Listener for Shared {
    fn committed(&self, revision: &Revision) {
        let Ok(mut i) = self.0.lock() else {
            return;
        };
        let Some(rows) = &revision.changed else {
            i.built = false;
            return;
        };
        if !i.built {
            return;
        }
        for row in rows.iter() {
            match row.key.kind {
                Kind::User => match row.json.as_deref().map(serde_json::from_str::<User>) {
                    Some(Ok(u)) => i.put_user(&u),
                    None => i.forget_user(&row.key.key),
                    Some(Err(_)) => i.built = false,
                },
                Kind::Group => match row.json.as_deref().map(serde_json::from_str::<Group>) {
                    Some(Ok(g)) => i.put_group(&g),
                    None => i.forget_group(&row.key.key),
                    Some(Err(_)) => i.built = false,
                },
                _ => {}
            }
        }
    }
}
