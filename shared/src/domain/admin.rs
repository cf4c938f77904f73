//! Who calls the admin API and what each may do: an access key may do everything; a
//! bearer token from a trusted issuer may do what its roles grant.

use super::access_keys::KeyName;
use super::token::IssuedBy;

/// What an admin operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Create identities, issue tokens (and exchange Teams tokens).
    Issue,
    /// Read identities and customId mappings, introspect tokens.
    Read,
    /// Revoke tokens, delete identities.
    Manage,
}

/// The role names that grant permissions (README, "Bearer authentication"): `all` grants
/// every permission, `issue` and `read` one each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNames {
    pub all: String,
    pub issue: String,
    pub read: String,
}

impl Default for RoleNames {
    fn default() -> Self {
        Self {
            all: "identity.admin".into(),
            issue: "token.issue".into(),
            read: "identity.read".into(),
        }
    }
}

/// The permissions a set of roles grants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    issue: bool,
    read: bool,
    manage: bool,
}

impl Grants {
    pub const ALL: Grants = Grants {
        issue: true,
        read: true,
        manage: true,
    };

    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Issue => self.issue,
            Permission::Read => self.read,
            Permission::Manage => self.manage,
        }
    }
}

impl RoleNames {
    pub fn grants<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> Grants {
        let mut grants = Grants::default();
        for role in roles {
            if role == self.all {
                return Grants::ALL;
            }
            grants.issue |= role == self.issue;
            grants.read |= role == self.read;
        }
        grants
    }
}

/// An authenticated admin caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCaller {
    /// A request signed with an access key.
    AccessKey { name: KeyName, fingerprint: String },
    /// A bearer token from a trusted issuer.
    Bearer {
        issuer: String,
        subject: String,
        grants: Grants,
    },
}

impl AdminCaller {
    pub fn may(&self, permission: Permission) -> bool {
        match self {
            Self::AccessKey { .. } => true,
            Self::Bearer { grants, .. } => grants.allows(permission),
        }
    }

    /// What the tokens this caller has issued record (see `IssuedBy`).
    pub fn issued_by(&self) -> IssuedBy {
        match self {
            Self::AccessKey { fingerprint, .. } => IssuedBy::AccessKey(fingerprint.clone()),
            Self::Bearer { issuer, .. } => IssuedBy::Issuer(issuer.clone()),
        }
    }

    /// Who asked, for retry records: per access key, or per bearer issuer and subject.
    pub fn retry_scope(&self) -> String {
        match self {
            Self::AccessKey { name, .. } => name.as_str().to_owned(),
            Self::Bearer {
                issuer, subject, ..
            } => format!(
                "bearer.{}",
                super::token::short_hash(format!("{issuer}\n{subject}").as_bytes())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_their_permissions_only() {
        let names = RoleNames::default();
        let all = names.grants(["x", "identity.admin"]);
        assert_eq!(all, Grants::ALL);
        let issue = names.grants(["token.issue"]);
        assert!(issue.allows(Permission::Issue));
        assert!(!issue.allows(Permission::Read));
        assert!(!issue.allows(Permission::Manage));
        let read = names.grants(["identity.read"]);
        assert!(read.allows(Permission::Read) && !read.allows(Permission::Issue));
        assert_eq!(names.grants(["Identity.Admin", ""]), Grants::default());
    }

    #[test]
    fn access_keys_may_do_everything_bearers_what_their_roles_grant() {
        let key = AdminCaller::AccessKey {
            name: KeyName::Primary,
            fingerprint: "ab".into(),
        };
        let bearer = AdminCaller::Bearer {
            issuer: "https://idp".into(),
            subject: "svc".into(),
            grants: RoleNames::default().grants(["token.issue"]),
        };
        for permission in [Permission::Issue, Permission::Read, Permission::Manage] {
            assert!(key.may(permission));
        }
        assert!(bearer.may(Permission::Issue));
        assert!(!bearer.may(Permission::Manage));
        assert_eq!(key.issued_by(), IssuedBy::AccessKey("ab".into()));
        assert_eq!(bearer.issued_by(), IssuedBy::Issuer("https://idp".into()));
        assert_eq!(key.retry_scope(), "primary");
        assert!(bearer.retry_scope().starts_with("bearer."));
    }
}
