//! Adapters: the ports implemented on real parts (DynamoDB, Secrets Manager, an OpenID
//! Connect provider) and in memory (local server, unit tests, benchmarks).

pub mod dynamodb;
pub mod memory;
pub mod oidc;
pub mod secrets_manager;
