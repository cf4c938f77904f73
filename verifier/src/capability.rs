//! What scopes allow: the capability table (DESIGN.md) that the authorizer enforces, and
//! the configurable map from a downstream API's routes to capabilities.

use std::collections::HashMap;

use crate::scope::{Scope, Scopes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Create, update or delete a chat thread.
    ManageChatThread,
    /// Add or remove a participant.
    ManageChatParticipants,
    /// Read threads, messages, participants and read receipts; send, edit and delete own
    /// messages; typing notifications.
    ParticipateInChat,
    /// Start a call.
    StartCall,
    /// Join a call in progress, start a call in a room one is invited to, in-call operations.
    JoinCall,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Self::ManageChatThread,
        Self::ManageChatParticipants,
        Self::ParticipateInChat,
        Self::StartCall,
        Self::JoinCall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ManageChatThread => "chat.thread.manage",
            Self::ManageChatParticipants => "chat.participants.manage",
            Self::ParticipateInChat => "chat.participate",
            Self::StartCall => "voip.call.start",
            Self::JoinCall => "voip.call.join",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The scopes that grant this capability: the table in DESIGN.md, row by row.
    pub fn granted_by(self) -> &'static [Scope] {
        match self {
            Self::ManageChatThread => &[Scope::Chat],
            Self::ManageChatParticipants => &[Scope::Chat, Scope::ChatJoin],
            Self::ParticipateInChat => &[Scope::Chat, Scope::ChatJoin, Scope::ChatJoinLimited],
            Self::StartCall => &[Scope::Voip],
            Self::JoinCall => &[Scope::Voip, Scope::VoipJoin],
        }
    }
}

impl Scopes {
    pub fn grants(self, capability: Capability) -> bool {
        capability
            .granted_by()
            .iter()
            .any(|scope| self.contains(*scope))
    }
}

/// Which capability each route of a downstream API needs, by API Gateway route key
/// (`METHOD /path/{param}`). A route not in the map is denied.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    routes: HashMap<String, Capability>,
}

/// The routes of a typical chat and calling backend; replace them with
/// CALLSIGN_AUTHORIZER_ROUTES.
const DEFAULT_ROUTES: &[(&str, Capability)] = &[
    ("POST /chat/threads", Capability::ManageChatThread),
    (
        "PATCH /chat/threads/{threadId}",
        Capability::ManageChatThread,
    ),
    (
        "DELETE /chat/threads/{threadId}",
        Capability::ManageChatThread,
    ),
    (
        "POST /chat/threads/{threadId}/participants",
        Capability::ManageChatParticipants,
    ),
    (
        "DELETE /chat/threads/{threadId}/participants/{participantId}",
        Capability::ManageChatParticipants,
    ),
    ("GET /chat/threads", Capability::ParticipateInChat),
    (
        "GET /chat/threads/{threadId}",
        Capability::ParticipateInChat,
    ),
    (
        "GET /chat/threads/{threadId}/participants",
        Capability::ParticipateInChat,
    ),
    (
        "GET /chat/threads/{threadId}/messages",
        Capability::ParticipateInChat,
    ),
    (
        "POST /chat/threads/{threadId}/messages",
        Capability::ParticipateInChat,
    ),
    (
        "PATCH /chat/threads/{threadId}/messages/{messageId}",
        Capability::ParticipateInChat,
    ),
    (
        "DELETE /chat/threads/{threadId}/messages/{messageId}",
        Capability::ParticipateInChat,
    ),
    (
        "GET /chat/threads/{threadId}/readReceipts",
        Capability::ParticipateInChat,
    ),
    (
        "POST /chat/threads/{threadId}/readReceipts",
        Capability::ParticipateInChat,
    ),
    (
        "POST /chat/threads/{threadId}/typing",
        Capability::ParticipateInChat,
    ),
    ("POST /calls", Capability::StartCall),
    ("POST /calls/{callId}/participants", Capability::JoinCall),
    ("POST /rooms/{roomId}/calls", Capability::JoinCall),
    ("POST /calls/{callId}/{operation}", Capability::JoinCall),
];

#[derive(Debug, thiserror::Error)]
#[error("authorizer routes: {0}")]
pub struct InvalidRoutes(String);

impl RoutePolicy {
    pub fn default_routes() -> Self {
        Self {
            routes: DEFAULT_ROUTES
                .iter()
                .map(|(route, c)| (route.to_string(), *c))
                .collect(),
        }
    }

    /// A JSON object from route key to capability name, e.g.
    /// `{"POST /chat/threads":"chat.thread.manage"}`.
    pub fn from_json(json: &str) -> Result<Self, InvalidRoutes> {
        let raw: HashMap<String, String> = serde_json::from_str(json)
            .map_err(|e| InvalidRoutes(format!("not a JSON object of strings: {e}")))?;
        let routes = raw
            .into_iter()
            .map(|(route, name)| {
                Capability::parse(&name)
                    .map(|c| (route.clone(), c))
                    .ok_or_else(|| InvalidRoutes(format!("{route}: unknown capability {name}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { routes })
    }

    pub fn capability(&self, route_key: &str) -> Option<Capability> {
        self.routes.get(route_key).copied()
    }

    pub fn routes(&self) -> impl Iterator<Item = (&str, Capability)> {
        self.routes.iter().map(|(route, c)| (route.as_str(), *c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table, written out as DESIGN.md has it: rows are capabilities, columns scopes.
    #[test]
    fn every_cell_of_the_capability_table() {
        use Scope::*;
        let table: &[(Capability, &[(Scope, bool)])] = &[
            (
                Capability::ManageChatThread,
                &[
                    (Chat, true),
                    (ChatJoin, false),
                    (ChatJoinLimited, false),
                    (Voip, false),
                    (VoipJoin, false),
                ],
            ),
            (
                Capability::ManageChatParticipants,
                &[
                    (Chat, true),
                    (ChatJoin, true),
                    (ChatJoinLimited, false),
                    (Voip, false),
                    (VoipJoin, false),
                ],
            ),
            (
                Capability::ParticipateInChat,
                &[
                    (Chat, true),
                    (ChatJoin, true),
                    (ChatJoinLimited, true),
                    (Voip, false),
                    (VoipJoin, false),
                ],
            ),
            (
                Capability::StartCall,
                &[
                    (Chat, false),
                    (ChatJoin, false),
                    (ChatJoinLimited, false),
                    (Voip, true),
                    (VoipJoin, false),
                ],
            ),
            (
                Capability::JoinCall,
                &[
                    (Chat, false),
                    (ChatJoin, false),
                    (ChatJoinLimited, false),
                    (Voip, true),
                    (VoipJoin, true),
                ],
            ),
        ];
        for (capability, row) in table {
            for (scope, allowed) in *row {
                let scopes = Scopes::parse([scope.as_str()]).unwrap();
                assert_eq!(
                    scopes.grants(*capability),
                    *allowed,
                    "{scope} / {}",
                    capability.as_str()
                );
            }
        }
    }

    #[test]
    fn routes_map_to_capabilities_and_unknown_routes_to_none() {
        let policy = RoutePolicy::default_routes();
        assert_eq!(
            policy.capability("POST /chat/threads"),
            Some(Capability::ManageChatThread)
        );
        assert_eq!(
            policy.capability("POST /calls"),
            Some(Capability::StartCall)
        );
        assert_eq!(policy.capability("GET /admin"), None);
        let custom = RoutePolicy::from_json(r#"{"GET /x":"chat.participate"}"#).unwrap();
        assert_eq!(
            custom.capability("GET /x"),
            Some(Capability::ParticipateInChat)
        );
        assert_eq!(custom.capability("POST /chat/threads"), None);
        assert!(RoutePolicy::from_json(r#"{"GET /x":"admin"}"#).is_err());
        assert!(RoutePolicy::from_json("[]").is_err());
    }
}
