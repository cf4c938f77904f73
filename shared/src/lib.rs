//! callsign: a serverless identity and access-token service speaking the ACS Identity
//! wire format. The domain (identities, scopes, tokens, keys, HMAC) knows nothing of
//! Lambda or the AWS SDK; `store`, `keys` and `lambda` hold the adapters.

pub mod api;
pub mod auth;
pub mod authorizer;
pub mod aws;
pub mod capability;
pub mod cleanup;
pub mod config;
pub mod front;
pub mod identity;
pub mod keys;
pub mod lambda;
pub mod logging;
pub mod rotation;
pub mod scope;
pub mod service;
pub mod store;
pub mod time;
pub mod token;
pub mod verifier;

pub use config::Config;
pub use identity::{CustomId, Identity, IdentityId, ResourceId};
pub use scope::{Scope, Scopes};
pub use service::IdentityService;
