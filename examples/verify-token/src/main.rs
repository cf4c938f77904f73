//! What a chat or calling backend embeds to accept callsign tokens: the deployment's
//! JWKS (fetched and cached), issuer and audience checks, and the capability table. It
//! compiles without the AWS SDK or any Lambda crate.
//!
//! Usage: verify-token JWKS_URL ISSUER AUDIENCE TOKEN
//! Prints the identity and what its scopes allow; exits 1 if the token is not accepted.
//! Revocation is callsign's to check (its introspection endpoint or API Gateway
//! authorizer); a token stays valid here until it expires.

use std::sync::Arc;
use std::time::Duration;

use callsign_verifier::{Capability, Expectations, JwksKeys, Verifier};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_url, issuer, audience, token] = args.as_slice() else {
        eprintln!("usage: verify-token JWKS_URL ISSUER AUDIENCE TOKEN");
        std::process::exit(2);
    };
    // Cached for the JWKS max-age callsign publishes; an unknown kid refetches at most
    // once a minute (a rotation happened).
    let keys =
        match JwksKeys::fetch(jwks_url, Duration::from_secs(300), Duration::from_secs(60)).await {
            Ok(keys) => keys,
            Err(e) => {
                eprintln!("cannot load {jwks_url}: {e}");
                std::process::exit(1);
            }
        };
    let verifier = Verifier::new(
        Expectations {
            issuer: issuer.clone(),
            audience: audience.clone(),
            leeway_seconds: 60,
        },
        Arc::new(keys),
    );
    match verifier.verify(token, chrono::Utc::now()).await {
        Ok(verified) => {
            println!("identity: {}", verified.identity);
            println!("scopes:   {}", verified.scopes.to_claim());
            for capability in Capability::ALL {
                let allowed = verified.scopes.grants(capability);
                println!(
                    "  {:<26} {}",
                    capability.as_str(),
                    if allowed { "yes" } else { "no" }
                );
            }
        }
        Err(rejection) => {
            println!("rejected: {rejection}");
            std::process::exit(1);
        }
    }
}
