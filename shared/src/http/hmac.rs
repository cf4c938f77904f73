//! ACS HMAC-SHA256 request authentication (wire spec §3), server and client side: the
//! admin routes' authentication.
//! aws-lc-rs provides HMAC, SHA-256 and constant-time comparison: it is already linked
//! for token signing, so no second crypto stack is pulled in.

use super::routes;
use crate::domain::access_keys::{AccessKeys, KeyName};
use crate::domain::keys::KeyError;
use aws_lc_rs::{constant_time, digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use percent_encoding::percent_decode_str;

const SCHEME: &str = "HMAC-SHA256";
const SIGNED_HEADERS: &str = "x-ms-date;host;x-ms-content-sha256";
const MAX_CLOCK_SKEW_MINUTES: i64 = 15;

/// The parts of a request that HMAC authentication looks at.
pub struct HmacRequest<'a> {
    pub method: &'a str,
    /// The path as the function received it (raw, possibly already decoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub host: Option<&'a str>,
    pub date: Option<&'a str>,
    pub content_sha256: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// Authentication failed. The reason is for our logs only; clients just get 401 Denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("a required header is missing")]
    MissingHeader,
    #[error("the body does not match x-ms-content-sha256")]
    ContentHashMismatch,
    #[error("the authorization header is not HMAC-SHA256 over the expected headers")]
    BadScheme,
    #[error("x-ms-date is unreadable or more than 15 minutes off")]
    StaleDate,
    #[error("no key, host and path form reproduce the signature")]
    BadSignature,
}

impl Denied {
    /// A fixed word for the logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::ContentHashMismatch => "content_hash_mismatch",
            Self::BadScheme => "bad_scheme",
            Self::StaleDate => "stale_date",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// Verifies a request against both access keys (spec §3, rules 1–7); the key that
/// signed it.
pub fn verify(
    keys: &AccessKeys,
    request: &HmacRequest<'_>,
    public_hosts: &[String],
    now: DateTime<Utc>,
) -> Result<KeyName, Denied> {
    // Rule 1: the body hash, before anything looks at the body.
    let claimed_hash = request.content_sha256.ok_or(Denied::MissingHeader)?;
    let body_hash = content_hash(request.body);
    constant_time::verify_slices_are_equal(claimed_hash.as_bytes(), body_hash.as_bytes())
        .map_err(|_| Denied::ContentHashMismatch)?;

    // Rule 2: scheme and signed headers.
    let authorization = request.authorization.ok_or(Denied::MissingHeader)?;
    let signature = parse_authorization(authorization).ok_or(Denied::BadScheme)?;

    // Rule 3: freshness.
    let date = request.date.ok_or(Denied::MissingHeader)?;
    let signed_at = DateTime::parse_from_rfc2822(date).map_err(|_| Denied::StaleDate)?;
    if (now - signed_at.with_timezone(&Utc)).abs() > Duration::minutes(MAX_CLOCK_SKEW_MINUTES) {
        return Err(Denied::StaleDate);
    }

    // Rules 4–6: any path form, any accepted host, either key. The form the SDKs sign
    // is tried first, on its own: the other forms are made only if it fails.
    let method = if request.method.bytes().any(|b| b.is_ascii_lowercase()) {
        std::borrow::Cow::Owned(request.method.to_ascii_uppercase())
    } else {
        std::borrow::Cow::Borrowed(request.method)
    };
    // Last, the Host header without its port: the Java SDK signs the URL's host alone
    // (`url.getHost()`), and some HTTP stacks still send the port in the header.
    let hosts = || {
        request
            .host
            .into_iter()
            .chain(public_hosts.iter().map(String::as_str))
            .chain(request.host.and_then(without_port))
            .filter(|host| !host.is_empty() && !host.ends_with('/'))
    };
    let signed_with = |path: &str| {
        hosts().find_map(|host| {
            let message = string_to_sign(&method, path, request.query, date, host, claimed_hash);
            keys.verifies(message.as_bytes(), &signature)
        })
    };
    let encoded = encoded_path(request.path);
    if let Some(key) = signed_with(&encoded) {
        return Ok(key);
    }
    let decoded = percent_decode_str(request.path).decode_utf8_lossy();
    [request.path, &decoded]
        .into_iter()
        .filter(|path| **path != encoded)
        .find_map(signed_with)
        .or_else(|| {
            let whole = spanning_tail_encoded(&decoded).filter(|path| *path != encoded)?;
            signed_with(&whole)
        })
        .ok_or(Denied::BadSignature)
}

/// A decoded customId path whose customId holds `/` (`/customIds/a/b`), with the
/// customId encoded whole (`/customIds/a%2Fb`), as the SDKs sign it.
fn spanning_tail_encoded(decoded: &str) -> Option<String> {
    let at = routes::spanning_tail(decoded)?;
    let mut encoded = decoded.as_bytes()[..at].to_vec();
    encode_segment(&decoded[at..], &mut encoded);
    String::from_utf8(encoded).ok()
}

/// `host:port` → `host` (`[::1]:8080` → `[::1]`); None without a port.
fn without_port(host: &str) -> Option<&str> {
    let (name, port) = host.rsplit_once(':')?;
    let bracketed_or_plain = name.ends_with(']') || !name.contains(':');
    (bracketed_or_plain && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some(name)
}

fn parse_authorization(value: &str) -> Option<Vec<u8>> {
    let (scheme, params) = value.split_once(' ')?;
    if scheme != SCHEME {
        return None;
    }
    let params = params.trim();
    // The order every SDK writes, read in one step; any other is read param by param.
    if let Some(signature) = params
        .strip_prefix("SignedHeaders=")
        .and_then(|rest| rest.strip_prefix(SIGNED_HEADERS))
        .and_then(|rest| rest.strip_prefix("&Signature="))
        .filter(|signature| !signature.contains('&'))
    {
        return STANDARD.decode(signature).ok();
    }
    let mut signed_headers = None;
    let mut signature = None;
    for param in params.split('&') {
        let (name, value) = param.split_once('=')?;
        match name {
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    if signed_headers? != SIGNED_HEADERS {
        return None;
    }
    STANDARD.decode(signature?).ok()
}

/// The path with every id segment percent-encoded (action segments such as
/// `:issueAccessToken` stay literal): the form the SDKs sign. The others a client may have
/// signed (rule 4) are the path as received and decoded.
fn encoded_path(received: &str) -> String {
    let mut encoded = Vec::with_capacity(received.len() + 16);
    for (i, segment) in received.split('/').enumerate() {
        if i > 0 {
            encoded.push(b'/');
        }
        if segment.starts_with(':') {
            encoded.extend_from_slice(segment.as_bytes());
        } else if segment.contains('%') {
            encode_segment(
                &percent_decode_str(segment).decode_utf8_lossy(),
                &mut encoded,
            );
        } else {
            encode_segment(segment, &mut encoded);
        }
    }
    // Whole segments of the received text and ASCII: always UTF-8.
    String::from_utf8(encoded)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as the SDKs
/// encode an id (`:` becomes `%3A`), copying the runs between encoded bytes whole:
/// `utf8_percent_encode`'s chunked iterator cost three times as much on every admin
/// request (benches/issue_path.rs).
fn encode_segment(segment: &str, encoded: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let mut rest = segment.as_bytes();
    while let Some(at) = rest.iter().position(|b| !unreserved(*b)) {
        encoded.extend_from_slice(&rest[..at]);
        let byte = rest[at];
        encoded.extend_from_slice(&[
            b'%',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0x0f)],
        ]);
        rest = &rest[at + 1..];
    }
    encoded.extend_from_slice(rest);
}

fn string_to_sign(
    method: &str,
    path: &str,
    query: Option<&str>,
    date: &str,
    host: &str,
    content_hash: &str,
) -> String {
    // One allocation of the exact size: this runs for every admin request, and
    // `format!` costs several times as much.
    let (separator, query) = query.map_or(("", ""), |query| ("?", query));
    [
        method,
        "\n",
        path,
        separator,
        query,
        "\n",
        date,
        ";",
        host,
        ";",
        content_hash,
    ]
    .concat()
}

pub fn content_hash(body: &[u8]) -> String {
    STANDARD.encode(digest::digest(&digest::SHA256, body))
}

/// The headers a client sends: `(x-ms-date, x-ms-content-sha256, Authorization)`.
/// `path_and_query` is exactly what goes on the wire.
pub fn sign_request(
    access_key_b64: &str,
    method: &str,
    path_and_query: &str,
    host: &str,
    date: &str,
    body: &[u8],
) -> Result<(String, String, String), KeyError> {
    let key_bytes = STANDARD
        .decode(access_key_b64)
        .map_err(|_| KeyError::Invalid("access key is not base64".into()))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let hash = content_hash(body);
    let message = format!(
        "{}\n{path_and_query}\n{date};{host};{hash}",
        method.to_ascii_uppercase()
    );
    let signature = STANDARD.encode(hmac::sign(&key, message.as_bytes()));
    let authorization = format!("{SCHEME} SignedHeaders={SIGNED_HEADERS}&Signature={signature}");
    Ok((date.to_owned(), hash, authorization))
}

/// `x-ms-date` for an instant (RFC 1123, GMT).
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access_keys::generate_key;

    const KEY: &str =
        "dGhpcyBpcyBhIHRlc3Qga2V5IGZvciBBQ1MgaWRlbnRpdHkgSE1BQyB3aXJlIHJlc2VhcmNoIDY0Ynl0ZXMhIQ==";
    const DATE: &str = "Mon, 02 Jun 2025 10:00:00 GMT";
    const HOST: &str = "my-resource.communication.azure.com";
    const ID: &str =
        "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";
    const ID_ENCODED: &str =
        "8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";
    const ISSUE_BODY: &str = r#"{"scopes": ["chat", "voip"], "expiresInMinutes": 60}"#;

    fn signed_at() -> DateTime<Utc> {
        DateTime::parse_from_rfc2822(DATE)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn keys() -> AccessKeys {
        AccessKeys::new(&generate_key(), KEY).unwrap()
    }

    fn signature_of(authorization: &str) -> &str {
        authorization.split("Signature=").nth(1).unwrap()
    }

    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

    /// RFC 3986 unreserved characters stay; everything else (`:` included) is encoded.
    const ID_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');

    #[test]
    fn segments_are_encoded_as_the_percent_encoding_crate_encodes_them() {
        let every_char: String = (0u32..0x800).filter_map(char::from_u32).collect();
        for text in [every_char.as_str(), "8:acs:x_y", "a b/c?d", "é€😀"] {
            let mut encoded = Vec::new();
            encode_segment(text, &mut encoded);
            let expected = utf8_percent_encode(text, ID_SEGMENT).to_string();
            assert_eq!(String::from_utf8(encoded).unwrap(), expected);
        }
    }

    #[test]
    fn authorization_params_are_read_in_either_order_and_nothing_else() {
        let expected = Some(b"sig".to_vec());
        let canonical = format!("{SCHEME} SignedHeaders={SIGNED_HEADERS}&Signature=c2ln");
        assert_eq!(parse_authorization(&canonical), expected);
        let reversed = format!("{SCHEME} Signature=c2ln&SignedHeaders={SIGNED_HEADERS}");
        assert_eq!(parse_authorization(&reversed), expected);
        assert_eq!(parse_authorization(&format!("{canonical}&Extra=1")), None);
        assert_eq!(parse_authorization(&format!("{canonical}&")), None);
        let other_headers = format!("{SCHEME} SignedHeaders=host&Signature=c2ln");
        assert_eq!(parse_authorization(&other_headers), None);
        assert_eq!(parse_authorization("Bearer c2ln"), None);
    }

    #[test]
    fn test_vector_1_create_identity() {
        let (_, hash, auth) = sign_request(
            KEY,
            "POST",
            "/identities?api-version=2023-10-01",
            HOST,
            DATE,
            b"",
        )
        .unwrap();
        assert_eq!(hash, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(
            signature_of(&auth),
            "tLDhDnJ+H3HHBn9oG15j32ltSLbF0/Y3LCZUVIQGs9Q="
        );
    }

    #[test]
    fn test_vector_2_issue_token() {
        let path = format!("/identities/{ID_ENCODED}/:issueAccessToken?api-version=2023-10-01");
        let (_, hash, auth) =
            sign_request(KEY, "POST", &path, HOST, DATE, ISSUE_BODY.as_bytes()).unwrap();
        assert_eq!(hash, "61fHvMdthuyC4EKoystoTBD5lj1BMUsqcqBz5FByCQk=");
        assert_eq!(
            signature_of(&auth),
            "zFDIi+5KmQZ3OBI5s1quoEiS7ECJsjP6QJdnOptCVK8="
        );
    }

    #[test]
    fn test_vector_3_delete_identity() {
        let path = format!("/identities/{ID_ENCODED}?api-version=2023-10-01");
        let (_, _, auth) = sign_request(KEY, "DELETE", &path, "127.0.0.1:8080", DATE, b"").unwrap();
        assert_eq!(
            signature_of(&auth),
            "J+QA8gJmAg7TCpBNZIjnINn+zWpcYibtHWXRj5Rwhlc="
        );
    }

    /// The contract's vectors as literals, through the server's check (not through
    /// `sign_request`): each verifies as received, with its path encoded or decoded.
    #[test]
    fn the_server_accepts_the_contracts_test_vectors() {
        const EMPTY: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let auth = |signature: &str| {
            format!("{SCHEME} SignedHeaders={SIGNED_HEADERS}&Signature={signature}")
        };
        let id_path = format!("/identities/{ID}");
        let issue_path = format!("/identities/{ID}/:issueAccessToken");
        let cases = [
            (
                "POST",
                "/identities",
                HOST,
                EMPTY,
                "",
                "tLDhDnJ+H3HHBn9oG15j32ltSLbF0/Y3LCZUVIQGs9Q=",
            ),
            (
                "POST",
                issue_path.as_str(),
                HOST,
                "61fHvMdthuyC4EKoystoTBD5lj1BMUsqcqBz5FByCQk=",
                ISSUE_BODY,
                "zFDIi+5KmQZ3OBI5s1quoEiS7ECJsjP6QJdnOptCVK8=",
            ),
            (
                "DELETE",
                id_path.as_str(),
                "127.0.0.1:8080",
                EMPTY,
                "",
                "J+QA8gJmAg7TCpBNZIjnINn+zWpcYibtHWXRj5Rwhlc=",
            ),
        ];
        for (method, path, host, hash, body, signature) in cases {
            let authorization = auth(signature);
            for received in [
                path.to_owned(),
                path.replace(':', "%3A").replace("/%3A", "/:"),
            ] {
                let request = HmacRequest {
                    method,
                    host: Some(host),
                    ..issue_request(&received, &authorization, hash, body.as_bytes())
                };
                assert_eq!(
                    verify(&keys(), &request, &[], signed_at()),
                    Ok(KeyName::Secondary),
                    "{method} {received}"
                );
            }
        }
    }

    /// The Java SDK signs the host without its port; the header may carry it.
    #[test]
    fn a_host_signed_without_its_port_verifies() {
        let path = format!("/identities/{ID_ENCODED}?api-version=2023-10-01");
        let (_, hash, auth) = sign_request(KEY, "DELETE", &path, "127.0.0.1", DATE, b"").unwrap();
        let received = format!("/identities/{ID_ENCODED}");
        let request = |host| HmacRequest {
            method: "DELETE",
            host: Some(host),
            ..issue_request(&received, &auth, &hash, b"")
        };
        for host in ["127.0.0.1:8443", "127.0.0.1"] {
            assert_eq!(
                verify(&keys(), &request(host), &[], signed_at()),
                Ok(KeyName::Secondary),
                "{host}"
            );
        }
        assert_eq!(
            verify(&keys(), &request("127.0.0.2:8443"), &[], signed_at()),
            Err(Denied::BadSignature)
        );
        assert_eq!(without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(without_port("[::1]"), None);
        assert_eq!(without_port("example.com"), None);
        assert_eq!(without_port("example.com:"), None);
        assert_eq!(without_port("::1"), None);
    }

    /// Vector 2 as each kind of client or gateway may present the path (other requests
    /// change its method and host).
    fn issue_request<'a>(
        path: &'a str,
        auth: &'a str,
        hash: &'a str,
        body: &'a [u8],
    ) -> HmacRequest<'a> {
        HmacRequest {
            method: "POST",
            path,
            query: Some("api-version=2023-10-01"),
            host: Some(HOST),
            date: Some(DATE),
            content_sha256: Some(hash),
            authorization: Some(auth),
            body,
        }
    }

    #[test]
    fn the_signed_encoded_path_verifies_in_every_received_form() {
        let signed = format!("/identities/{ID_ENCODED}/:issueAccessToken?api-version=2023-10-01");
        let (_, hash, auth) =
            sign_request(KEY, "POST", &signed, HOST, DATE, ISSUE_BODY.as_bytes()).unwrap();
        for received in [
            format!("/identities/{ID_ENCODED}/:issueAccessToken"),
            format!("/identities/{ID}/:issueAccessToken"),
        ] {
            let request = issue_request(&received, &auth, &hash, ISSUE_BODY.as_bytes());
            assert_eq!(
                verify(&keys(), &request, &[], signed_at()),
                Ok(KeyName::Secondary),
                "{received}"
            );
        }
    }

    #[test]
    fn a_custom_id_holding_a_slash_verifies_when_received_decoded() {
        let signed = "/customIds/contoso%2Falice?api-version=2025-03-02-preview";
        let (_, hash, auth) = sign_request(KEY, "GET", signed, HOST, DATE, b"").unwrap();
        for received in ["/customIds/contoso%2Falice", "/customIds/contoso/alice"] {
            let request = HmacRequest {
                method: "GET",
                query: Some("api-version=2025-03-02-preview"),
                ..issue_request(received, &auth, &hash, b"")
            };
            assert_eq!(
                verify(&keys(), &request, &[], signed_at()),
                Ok(KeyName::Secondary),
                "{received}"
            );
        }
    }

    #[test]
    fn a_literal_colon_path_verifies_when_received_encoded() {
        let signed = format!("/identities/{ID}/:issueAccessToken?api-version=2023-10-01");
        let (_, hash, auth) =
            sign_request(KEY, "POST", &signed, HOST, DATE, ISSUE_BODY.as_bytes()).unwrap();
        let received = format!("/identities/{ID_ENCODED}/:issueAccessToken");
        let request = issue_request(&received, &auth, &hash, ISSUE_BODY.as_bytes());
        assert_eq!(
            verify(&keys(), &request, &[], signed_at()),
            Ok(KeyName::Secondary)
        );
    }

    #[test]
    fn each_rule_denies() {
        let signed = format!("/identities/{ID_ENCODED}/:issueAccessToken?api-version=2023-10-01");
        let received = format!("/identities/{ID}/:issueAccessToken");
        let body = ISSUE_BODY.as_bytes();
        let (_, hash, auth) = sign_request(KEY, "POST", &signed, HOST, DATE, body).unwrap();
        let ok = || issue_request(&received, &auth, &hash, body);
        let keys = keys();

        // 1: body changed after signing.
        let tampered = br#"{"scopes": ["chat", "voip"], "expiresInMinutes": 61}"#;
        let r = HmacRequest {
            body: tampered,
            ..ok()
        };
        assert_eq!(
            verify(&keys, &r, &[], signed_at()),
            Err(Denied::ContentHashMismatch)
        );
        // 2: other scheme or signed headers.
        let other = auth.replace(
            "x-ms-date;host;x-ms-content-sha256",
            "host;x-ms-date;x-ms-content-sha256",
        );
        let r = HmacRequest {
            authorization: Some(&other),
            ..ok()
        };
        assert_eq!(verify(&keys, &r, &[], signed_at()), Err(Denied::BadScheme));
        let other = auth.replace("HMAC-SHA256", "Bearer");
        let r = HmacRequest {
            authorization: Some(&other),
            ..ok()
        };
        assert_eq!(verify(&keys, &r, &[], signed_at()), Err(Denied::BadScheme));
        // 3: stale or future date, either side of 15 minutes.
        assert_eq!(
            verify(&keys, &ok(), &[], signed_at() + Duration::minutes(16)),
            Err(Denied::StaleDate)
        );
        assert_eq!(
            verify(&keys, &ok(), &[], signed_at() - Duration::minutes(16)),
            Err(Denied::StaleDate)
        );
        assert_eq!(
            verify(&keys, &ok(), &[], signed_at() + Duration::minutes(14)),
            Ok(KeyName::Secondary)
        );
        // 4: another path.
        let r = HmacRequest {
            path: "/identities",
            ..ok()
        };
        assert_eq!(
            verify(&keys, &r, &[], signed_at()),
            Err(Denied::BadSignature)
        );
        // 5: another host; the host with a trailing slash is never accepted.
        let r = HmacRequest {
            host: Some("evil.example"),
            ..ok()
        };
        assert_eq!(
            verify(&keys, &r, &[], signed_at()),
            Err(Denied::BadSignature)
        );
        assert_eq!(
            verify(&keys, &r, &[HOST.to_owned()], signed_at()),
            Ok(KeyName::Secondary),
            "configured public host"
        );
        let (_, h, slash_auth) =
            sign_request(KEY, "POST", &signed, &format!("{HOST}/"), DATE, body).unwrap();
        let r = HmacRequest {
            authorization: Some(&slash_auth),
            content_sha256: Some(&h),
            host: Some("evil"),
            ..ok()
        };
        assert_eq!(
            verify(&keys, &r, &[format!("{HOST}/")], signed_at()),
            Err(Denied::BadSignature)
        );
        // 6: neither key.
        let strangers = AccessKeys::generate();
        assert_eq!(
            verify(&strangers, &ok(), &[], signed_at()),
            Err(Denied::BadSignature)
        );
        // Missing headers.
        let r = HmacRequest {
            authorization: None,
            ..ok()
        };
        assert_eq!(
            verify(&keys, &r, &[], signed_at()),
            Err(Denied::MissingHeader)
        );
    }

    #[test]
    fn the_secondary_key_alone_is_enough() {
        let keys = AccessKeys::new(&generate_key(), KEY).unwrap();
        let swapped = AccessKeys::new(KEY, &generate_key()).unwrap();
        let (_, hash, auth) = sign_request(
            KEY,
            "POST",
            "/identities?api-version=2023-10-01",
            HOST,
            DATE,
            b"",
        )
        .unwrap();
        let r = HmacRequest {
            method: "POST",
            path: "/identities",
            query: Some("api-version=2023-10-01"),
            host: Some(HOST),
            date: Some(DATE),
            content_sha256: Some(&hash),
            authorization: Some(&auth),
            body: b"",
        };
        assert_eq!(verify(&keys, &r, &[], signed_at()), Ok(KeyName::Secondary));
        assert_eq!(verify(&swapped, &r, &[], signed_at()), Ok(KeyName::Primary));
    }

    #[test]
    fn access_keys_round_trip_and_reject_junk() {
        let keys = AccessKeys::generate();
        let again = AccessKeys::from_secret(&keys.to_secret()).unwrap();
        assert_eq!(again.primary(), keys.primary());
        assert_eq!(again.secondary(), keys.secondary());
        assert_ne!(Some(keys.primary()), keys.secondary());
        let primary_only =
            AccessKeys::from_secret(&format!(r#"{{"primaryKey":"{KEY}"}}"#)).unwrap();
        assert_eq!(
            (primary_only.primary(), primary_only.secondary()),
            (KEY, None)
        );
        assert!(AccessKeys::from_secret("{}").is_err());
        assert!(AccessKeys::new("not base64!", KEY).is_err());
        assert!(AccessKeys::new("c2hvcnQ=", KEY).is_err());
        assert!(!format!("{keys:?}").contains(keys.primary()));
    }

    #[test]
    fn http_date_is_rfc1123() {
        assert_eq!(http_date(signed_at()), DATE);
    }
}
