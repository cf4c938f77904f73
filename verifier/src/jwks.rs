//! Keys from a JWKS URL (callsign's `/.well-known/jwks.json`, or an identity provider's),
//! fetched over HTTPS and cached. Only https URLs (plain http on loopback, for tests and
//! local runs), no redirects, at most 1 MiB, and never an empty key set.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::PublicKeySource;
use crate::cache::Cached;
use crate::keys::{KeyError, PublicKeys};

const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// A JWKS, cached for `max_age` and fetched early on an unknown kid at most once per
/// `min_refresh_interval`.
pub struct JwksKeys {
    cache: Cached<PublicKeys>,
    min_refresh_interval: Duration,
}

impl JwksKeys {
    /// Fetches the key set once; fails if it cannot be had.
    pub async fn fetch(
        url: &str,
        max_age: Duration,
        min_refresh_interval: Duration,
    ) -> Result<Self, KeyError> {
        let http = http_client(url)?;
        let keys = get_jwks(&http, url).await?;
        let url = url.to_owned();
        let cache = Cached::new(keys, max_age, "JWKS", move || {
            let (http, url) = (http.clone(), url.clone());
            async move { get_jwks(&http, &url).await }
        });
        Ok(Self {
            cache,
            min_refresh_interval,
        })
    }
}

#[async_trait]
impl PublicKeySource for JwksKeys {
    fn current(&self) -> Arc<PublicKeys> {
        self.cache.get()
    }

    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys> {
        self.cache.refresh_now(self.min_refresh_interval).await
    }
}

/// A client for key material: https only (plain http on loopback), no redirects, short
/// timeouts.
fn http_client(url: &str) -> Result<reqwest::Client, KeyError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| KeyError::Invalid(format!("{url}: {e}")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return Err(KeyError::Invalid(format!("{url}: only https is accepted")));
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| KeyError::Source(format!("HTTP client: {e}")))
}

async fn get_limited(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, KeyError> {
    let failed = |e: String| KeyError::Source(format!("GET {url}: {e}"));
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(response.status().to_string()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(failed("the document is larger than 1 MiB".into()));
        }
    }
    Ok(body)
}

/// One GET of a small JSON document under the key-material rules (OIDC discovery).
pub async fn fetch_document(url: &str) -> Result<Vec<u8>, KeyError> {
    get_limited(&http_client(url)?, url).await
}

async fn get_jwks(http: &reqwest::Client, url: &str) -> Result<PublicKeys, KeyError> {
    let body = get_limited(http, url).await?;
    let keys = PublicKeys::from_jwks(&String::from_utf8_lossy(&body))?;
    // A set with no usable key would lock every token out: keep the old one instead.
    if keys.iter().next().is_none() {
        return Err(KeyError::Invalid(format!(
            "{url} lists no usable signing key"
        )));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(http_client("https://idp.example/jwks").is_ok());
        assert!(http_client("http://127.0.0.1:9/jwks").is_ok());
        assert!(http_client("http://idp.example/jwks").is_err());
        assert!(http_client("file:///etc/passwd").is_err());
    }
}
