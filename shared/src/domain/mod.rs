//! The domain: identities and their customIds, scopes and capabilities, token issue and
//! verification, key sets, the admin use cases, the end-user front, rotation steps, the
//! housekeeping policy, identity lifecycle events, the authorizer's decision, admin callers' permissions and the
//! Teams exchange. It knows no AWS SDK, Lambda or HTTP type; what it needs from the
//! outside world it asks through `ports`.

pub mod access_keys;
pub mod admin;
pub mod authorizer;
pub mod front;
pub mod housekeeping;
pub mod identity;
pub mod key_ring;
pub mod keys;
pub mod lifecycle;
pub mod placement;
pub mod ports;
pub mod rotation;
pub mod service;
pub mod signals;
pub mod teams;
pub mod time;
pub mod token;

/// Scopes and the capability table, shared with the services that verify tokens.
pub use callsign_verifier::{Capability, RoutePolicy, Scope, Scopes, capability, scope};
