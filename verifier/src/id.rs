//! Identity ids as tokens carry them: `8:acs:<resource id>_<uuid>` (or a Teams user's
//! `8:orgid:<uuid>`), and the deployment's resource id.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Prefix the ACS SDKs (communication-common) use to classify a raw id as an ACS user.
const ACS_PREFIX: &str = "8:acs:";
/// A Teams user's identity (`8:orgid:<Entra object id>`): the subject of a token from the
/// Teams exchange. It has no record here; Entra ID owns the user.
const TEAMS_PREFIX: &str = "8:orgid:";

/// The deployment's resource id: the GUID every identity id of this deployment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceId(Uuid);

impl ResourceId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The resource an id of the ACS shape names, whatever its suffix (letters, digits and
    /// `-._~`, RFC 3986's unreserved characters): also an id no one issued, whose
    /// resource still decides whether it is another's or unknown.
    pub fn of_acs_shaped(raw: &str) -> Option<Self> {
        let (resource, suffix) = split_acs(raw)?;
        let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        (!suffix.is_empty() && suffix.bytes().all(unreserved)).then_some(Self(resource))
    }
}

impl FromStr for ResourceId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hyphenated_uuid(s)
            .map(Self)
            .ok_or_else(|| format!("'{s}' is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"))
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// A communication identity id, kept in its canonical (lowercase) text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a valid communication identity id; expected 8:acs:<resource id>_<guid> (or 8:orgid:<guid> in a token)"
)]
pub struct MalformedIdentityId(String);

impl IdentityId {
    /// A fresh identity of `resource`, with a random (v4) suffix.
    pub fn new(resource: ResourceId) -> Self {
        Self(format!(
            "{ACS_PREFIX}{resource}_{}",
            Uuid::new_v4().as_hyphenated()
        ))
    }

    /// The identity of a Teams user, by their Entra object id.
    pub fn teams_user(object_id: Uuid) -> Self {
        Self(format!("{TEAMS_PREFIX}{}", object_id.as_hyphenated()))
    }

    pub fn is_teams_user(&self) -> bool {
        self.0.starts_with(TEAMS_PREFIX)
    }

    /// An ACS identity of any resource, or a Teams user.
    pub fn parse(raw: &str) -> Result<Self, MalformedIdentityId> {
        let malformed = || MalformedIdentityId(raw.chars().take(100).collect());
        if let Some(object_id) = raw.strip_prefix(TEAMS_PREFIX) {
            return parse_hyphenated_uuid(object_id)
                .map(Self::teams_user)
                .ok_or_else(malformed);
        }
        let (resource, suffix) = split_acs(raw).ok_or_else(malformed)?;
        let suffix = parse_hyphenated_uuid(suffix).ok_or_else(malformed)?;
        // Already canonical (lowercase, as ids are issued): kept as received.
        if !raw.bytes().any(|b| b.is_ascii_uppercase()) {
            return Ok(Self(raw.to_owned()));
        }
        Ok(Self(format!(
            "{ACS_PREFIX}{}_{}",
            resource.as_hyphenated(),
            suffix.as_hyphenated()
        )))
    }

    /// The resource an ACS identity belongs to (None: a Teams user).
    pub fn resource(&self) -> Option<ResourceId> {
        let rest = self.0.strip_prefix(ACS_PREFIX)?;
        // Construction guarantees a hyphenated GUID before the underscore.
        Some(ResourceId(
            Uuid::parse_str(&rest[..36]).expect("validated at construction"),
        ))
    }

    pub fn belongs_to(&self, resource: ResourceId) -> bool {
        self.resource() == Some(resource)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id without the leading `8:`, as ACS puts it in the `skypeid` claim.
    pub fn skype_id(&self) -> &str {
        &self.0[2..]
    }
}

impl fmt::Display for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `8:acs:<resource GUID>_<suffix>`: the resource, and the suffix unchecked.
fn split_acs(raw: &str) -> Option<(Uuid, &str)> {
    let (resource, suffix) = raw.strip_prefix(ACS_PREFIX)?.split_once('_')?;
    Some((parse_hyphenated_uuid(resource)?, suffix))
}

fn parse_hyphenated_uuid(s: &str) -> Option<Uuid> {
    // Uuid::try_parse also takes braced and simple forms; ids use the hyphenated one only.
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCE: &str = "2dee53b4-368b-45b4-ab52-8493fb117652";

    #[test]
    fn new_ids_carry_the_resource_and_parse_back() {
        let resource: ResourceId = RESOURCE.parse().unwrap();
        let id = IdentityId::new(resource);
        assert!(id.as_str().starts_with(&format!("8:acs:{RESOURCE}_")));
        assert_eq!(IdentityId::parse(id.as_str()).unwrap(), id);
        assert!(id.belongs_to(resource));
        assert!(!id.is_teams_user());
        assert!(!id.belongs_to(ResourceId::random()));
        assert_eq!(id.skype_id(), &id.as_str()[2..]);
        assert!(id.skype_id().starts_with("acs:"));
    }

    #[test]
    fn ids_are_canonicalised_to_lowercase() {
        let upper = format!(
            "8:acs:{}_00000005-14A2-493B-8A72-5A3A0D000081",
            RESOURCE.to_uppercase()
        );
        let id = IdentityId::parse(&upper).unwrap();
        assert_eq!(
            id.as_str(),
            format!("8:acs:{RESOURCE}_00000005-14a2-493b-8a72-5a3a0d000081")
        );
    }

    #[test]
    fn teams_users_parse_but_belong_to_no_resource() {
        let id = IdentityId::parse("8:orgid:0AF0B37D-1B4F-4F4E-9C1E-2C6F3D1A7B90").unwrap();
        assert_eq!(id.as_str(), "8:orgid:0af0b37d-1b4f-4f4e-9c1e-2c6f3d1a7b90");
        assert!(id.is_teams_user());
        assert_eq!(id.resource(), None);
        assert!(!id.belongs_to(RESOURCE.parse().unwrap()));
        assert_eq!(id.skype_id(), "orgid:0af0b37d-1b4f-4f4e-9c1e-2c6f3d1a7b90");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "8:acs:",
            "acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081",
            "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652",
            "8:acs:not-a-guid_00000005-14a2-493b-8a72-5a3a0d000081",
            "8:acs:2dee53b4368b45b4ab528493fb117652_00000005-14a2-493b-8a72-5a3a0d000081",
            "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_x",
            "8:teamsvisitor:abc",
            "8:orgid:",
            "8:orgid:not-a-guid",
        ] {
            assert!(IdentityId::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn an_acs_shaped_id_names_its_resource_whatever_its_suffix() {
        let resource = RESOURCE.parse().ok();
        for id in [
            format!("8:acs:{RESOURCE}_00000005-14a2-493b-8a72-5a3a0d000081"),
            format!("8:acs:{RESOURCE}_nonexistent"),
            format!("8:acs:{}_a.b~c-d_e", RESOURCE.to_uppercase()),
        ] {
            assert_eq!(ResourceId::of_acs_shaped(&id), resource, "{id}");
        }
        for id in [
            format!("8:acs:{RESOURCE}_"),
            format!("8:acs:{RESOURCE}_a b"),
            format!("8:acs:{RESOURCE}_a/b"),
            format!("8:acs:{RESOURCE}"),
            "8:acs:not-a-guid_abc".to_owned(),
            format!("8:orgid:{RESOURCE}"),
        ] {
            assert_eq!(ResourceId::of_acs_shaped(&id), None, "{id}");
        }
    }
}
