//! Token scopes. The capability table they grant is enforced by the verification side.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Chat,
    ChatJoin,
    ChatJoinLimited,
    Voip,
    VoipJoin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Chat,
        Scope::ChatJoin,
        Scope::ChatJoinLimited,
        Scope::Voip,
        Scope::VoipJoin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Chat => "chat",
            Scope::ChatJoin => "chat.join",
            Scope::ChatJoinLimited => "chat.join.limited",
            Scope::Voip => "voip",
            Scope::VoipJoin => "voip.join",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty set of scopes, duplicates collapsed, kept in a canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidScopes {
    #[error("Invalid scopes - Scopes field is required.")]
    Empty,
    #[error(
        "Invalid scope '{0}'. Valid scopes are: chat, chat.join, chat.join.limited, voip, voip.join."
    )]
    Unknown(String),
}

impl Scopes {
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidScopes> {
        let mut bits = 0;
        for name in names {
            let scope = Scope::parse(name)
                .ok_or_else(|| InvalidScopes::Unknown(name.chars().take(64).collect()))?;
            bits |= scope.bit();
        }
        if bits == 0 {
            return Err(InvalidScopes::Empty);
        }
        Ok(Self(bits))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The `acsScope` claim: comma-separated, no spaces.
    pub fn to_claim(self) -> String {
        self.claim().to_string()
    }

    /// The `acsScope` claim, written where it is displayed (no `String` of its own).
    pub fn claim(self) -> ScopesClaim {
        ScopesClaim(self)
    }

    pub fn from_claim(claim: &str) -> Result<Self, InvalidScopes> {
        Self::parse(claim.split(','))
    }
}

/// Scopes as the `acsScope` claim writes them: comma-separated, no spaces.
pub struct ScopesClaim(Scopes);

impl fmt::Display for ScopesClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_name_round_trips() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("CHAT"), None);
        assert_eq!(Scope::parse("chat "), None);
    }

    #[test]
    fn duplicates_collapse_into_canonical_order() {
        let scopes = Scopes::parse(["voip", "chat", "voip", "chat"]).unwrap();
        assert_eq!(scopes.to_claim(), "chat,voip");
        assert_eq!(Scopes::from_claim("chat,voip").unwrap(), scopes);
    }

    #[test]
    fn empty_and_unknown_scopes_are_rejected() {
        assert_eq!(Scopes::parse([]), Err(InvalidScopes::Empty));
        assert_eq!(
            Scopes::parse(["chat", "admin"]),
            Err(InvalidScopes::Unknown("admin".into()))
        );
    }
}
