//! Request authentication for the admin API.

pub mod hmac;
pub mod oidc;

pub use hmac::{AccessKeys, Denied, HmacRequest, sign_request};
