//! callsign: a serverless identity and access-token service speaking the ACS Identity
//! wire format.
//!
//! Dependencies point inward: `domain` (with its `ports`) depends on nothing of the
//! others; `adapters` implement the ports, `http` and `lambda` translate requests and
//! events into use cases; `config` reads the environment, and `app`, the composition
//! root, is the only module that knows them all.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod lambda;
pub mod logging;

pub use config::Config;
pub use domain::identity::{CustomId, Identity, IdentityId, ResourceId};
pub use domain::service::IdentityService;
pub use domain::{Scope, Scopes};
