//! Adapters: the ports implemented on real parts (DynamoDB, Secrets Manager, EventBridge,
//! an OpenID Connect provider) and in memory (local server, unit tests, benchmarks), and the AWS
//! SDK clients' HTTP transport.

pub mod aws_https;
pub mod dynamodb;
pub mod eventbridge;
pub mod memory;
pub mod oidc;
pub mod secrets_manager;
