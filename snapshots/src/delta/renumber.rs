//! A carried row's references, renumbered as the delta's splices move the
//! rows they point to.

use crate::body::{
    ApiKeyRec, CatalogRec, CustomRoleRec, EnvRec, GrantRec, GroupRec, NodeRef, ObjectRec, OptStr,
    OrgRec, PermissionRec, PrincipalRef, RoleRef, ServiceAccountRec, Str, TeamRec, UserRec,
};

use super::splice::Remap;

/// Every table's remap.
pub(crate) struct Maps {
    pub strings: Remap,
    pub orgs: Remap,
    pub envs: Remap,
    pub catalogs: Remap,
    pub objects: Remap,
    pub users: Remap,
    pub services: Remap,
    pub groups: Remap,
    pub teams: Remap,
    pub roles: Remap,
}

/// A row with references into other tables.
pub(crate) trait Renumber: Sized {
    /// The row with every reference moved; `None` if one points at a row
    /// the delta removes.
    fn renumber(&self, m: &Maps) -> Option<Self>;
}

impl Maps {
    fn str(&self, s: Str) -> Option<Str> {
        self.strings.get(s.0).map(Str)
    }

    fn opt(&self, s: Option<Str>) -> Option<Option<Str>> {
        match s {
            None => Some(None),
            Some(s) => self.str(s).map(Some),
        }
    }

    fn opt_str(&self, s: OptStr) -> Option<OptStr> {
        self.opt(s.get()).map(OptStr::from)
    }

    fn node(&self, n: NodeRef) -> Option<NodeRef> {
        Some(match n {
            NodeRef::Org(i) => NodeRef::Org(self.orgs.get(i)?),
            NodeRef::Env(i) => NodeRef::Env(self.envs.get(i)?),
            NodeRef::Catalog(i) => NodeRef::Catalog(self.catalogs.get(i)?),
            NodeRef::Object(i) => NodeRef::Object(self.objects.get(i)?),
            NodeRef::Team(i) => NodeRef::Team(self.teams.get(i)?),
        })
    }

    pub(crate) fn principal(&self, p: PrincipalRef) -> Option<PrincipalRef> {
        Some(match p {
            PrincipalRef::User(i) => PrincipalRef::User(self.users.get(i)?),
            PrincipalRef::Service(i) => PrincipalRef::Service(self.services.get(i)?),
            PrincipalRef::Group(i) => PrincipalRef::Group(self.groups.get(i)?),
        })
    }

    fn role(&self, r: RoleRef) -> Option<RoleRef> {
        Some(match r {
            RoleRef::Builtin(b) => RoleRef::Builtin(b),
            RoleRef::Custom(i) => RoleRef::Custom(self.roles.get(i)?),
        })
    }

    fn org_opt(&self, o: Option<u32>) -> Option<Option<u32>> {
        match o {
            None => Some(None),
            Some(o) => self.orgs.get(o).map(Some),
        }
    }
}

impl Renumber for String {
    fn renumber(&self, _: &Maps) -> Option<Self> {
        Some(self.clone())
    }
}

impl Renumber for OrgRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(OrgRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            parent: m.org_opt(self.parent)?,
        })
    }
}

impl Renumber for EnvRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(EnvRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            org: m.orgs.get(self.org)?,
            tier: self.tier,
        })
    }
}

impl Renumber for CatalogRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(CatalogRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            env: m.envs.get(self.env)?,
            kind: self.kind,
            connector: m.opt(self.connector)?,
        })
    }
}

impl Renumber for ObjectRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(ObjectRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            kind: m.str(self.kind)?,
            parent: m.node(self.parent)?,
        })
    }
}

impl Renumber for UserRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(UserRec {
            username: m.str(self.username)?,
            name: m.opt_str(self.name)?,
            first_name: m.opt_str(self.first_name)?,
            last_name: m.opt_str(self.last_name)?,
            email: m.str(self.email)?,
            phone: m.opt_str(self.phone)?,
            org: m.orgs.get(self.org)?,
            timezone: m.opt_str(self.timezone)?,
            locale: m.opt_str(self.locale)?,
            start_page: m.opt_str(self.start_page)?,
            ..self.clone()
        })
    }
}

impl Renumber for ServiceAccountRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(ServiceAccountRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            description: m.opt(self.description)?,
            org: m.orgs.get(self.org)?,
            ..self.clone()
        })
    }
}

impl Renumber for ApiKeyRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(ApiKeyRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            creator: m.users.get(self.creator)?,
            ..self.clone()
        })
    }
}

impl Renumber for GroupRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(GroupRec {
            id: m.str(self.id)?,
            name: m.str(self.name)?,
            code: m.str(self.code)?,
            description: m.opt(self.description)?,
            members: self
                .members
                .iter()
                .map(|&p| m.principal(p))
                .collect::<Option<_>>()?,
        })
    }
}

impl Renumber for TeamRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(TeamRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            org: m.orgs.get(self.org)?,
            owner: m.users.get(self.owner)?,
            members: self
                .members
                .iter()
                .map(|&u| m.users.get(u))
                .collect::<Option<_>>()?,
        })
    }
}

impl Renumber for CustomRoleRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(CustomRoleRec {
            id: m.str(self.id)?,
            name: m.opt(self.name)?,
            description: m.opt(self.description)?,
            scopes: self
                .scopes
                .iter()
                .map(|&s| m.str(s))
                .collect::<Option<_>>()?,
        })
    }
}

impl Renumber for GrantRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(GrantRec {
            principal: m.principal(self.principal)?,
            role: m.role(self.role)?,
            on: m.node(self.on)?,
        })
    }
}

impl Renumber for PermissionRec {
    fn renumber(&self, m: &Maps) -> Option<Self> {
        Some(PermissionRec {
            principal: m.principal(self.principal)?,
            org: m.org_opt(self.org)?,
            ..*self
        })
    }
}
