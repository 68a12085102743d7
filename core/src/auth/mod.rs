//! Who a connection is: JWT verification (one key, or an identity provider's JWKS), the
//! claim checks, and the authenticated [`User`].

pub mod access;
mod claims;
pub mod host_error;
pub mod jwks;
mod settings;

use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Config, JwtKey};
use claims::ClaimRules;
pub use claims::Claims;
use jwks::{Jwks, JwksError};

/// An authenticated user, as a token or a host `authenticate` hook describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user id (the token's `sub`).
    pub id: String,
    /// The display name (the token's `username`, else the id).
    pub username: String,
    /// Room patterns the user may join (`*` at the end is a prefix wildcard); `None` when the
    /// token carries no `rooms` claim and the room policy decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// When the credential that authenticated the user expires (the token's `exp`, Unix
    /// seconds); `None` when it does not. Connection state recovery refuses a session past
    /// it. Not part of the user's JSON: hosts see `{id, username, rooms?}` as before.
    #[serde(skip)]
    pub expires_at: Option<u64>,
    /// Everything the credential said about the user: every claim of the token, or the whole
    /// object a host `authenticate` hook returned. Hosts get it with the user (tenant, role)
    /// so their hooks need no lookup. Bounded by the request head that carried it. Kept
    /// as JSON text ([`Claims`]), parsed when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Claims>,
}

impl User {
    /// Whether the user's `rooms` claim allows `room`; `None` when there is no claim.
    pub fn claim_allows(&self, room: &str) -> Option<bool> {
        let patterns = self.rooms.as_ref()?;
        Some(patterns.iter().any(|p| pattern_matches(p, room)))
    }

    /// Whether the user's credential has expired at `now` (Unix seconds); the same rule as
    /// the token check: expired once `exp` is in the past.
    pub fn expired_at(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|exp| exp < now)
    }

    /// Whether the user's credential has expired now.
    pub fn is_expired(&self) -> bool {
        self.expired_at(unix_now())
    }
}

/// A user as a dropped session's state travels between cluster nodes: the user's JSON plus
/// the credential's expiry, so the node the client comes back through refuses it past it
/// too. Nodes that predate `expiresAt` ignore it (and send none: no expiry known).
#[derive(Serialize, Deserialize)]
struct SessionUser {
    #[serde(flatten)]
    user: User,
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
}

impl User {
    /// The user with its expiry, as JSON, for a session handed over to another node.
    pub fn to_session_json(&self) -> String {
        serde_json::to_string(&SessionUser {
            user: self.clone(),
            expires_at: self.expires_at,
        })
        .unwrap_or_default()
    }

    /// Reads what [`User::to_session_json`] wrote; `None` when it is not a user.
    pub fn from_session_json(json: &str) -> Option<User> {
        let SessionUser {
            mut user,
            expires_at,
        } = serde_json::from_str(json).ok()?;
        user.expires_at = expires_at;
        Some(user)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a room pattern matches a room: exact, or a prefix when it ends with `*`.
pub fn pattern_matches(pattern: &str, room: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => pattern == room,
    }
}

/// Why a connection was refused. The `Display` text is the exact message clients receive
/// (Socket.IO `connect_error`, the SSE `401` body, the Yjs close reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("Authentication required")]
    Required,
    /// The token is malformed, badly signed, uses an algorithm its key is not for, or lacks
    /// the user id claim.
    #[error("Invalid token")]
    Invalid,
    /// The token's `exp` has passed (beyond the leeway).
    #[error("Token expired")]
    Expired,
    /// The token's `nbf` is still ahead (beyond the leeway).
    #[error("Token not yet valid")]
    NotYetValid,
    /// The token names a key (`kid`) the identity provider's key set does not have, even
    /// after refetching it.
    #[error("Unknown signing key")]
    UnknownKey,
    /// The token's `iss` is missing or not a configured issuer.
    #[error("Invalid token issuer")]
    InvalidIssuer,
    /// The token's `aud` is missing or names none of the configured audiences.
    #[error("Invalid token audience")]
    InvalidAudience,
    /// The token has no `exp`, and tokens without one are not allowed.
    #[error("Token has no expiry")]
    MissingExpiry,
    /// A host hook refused the connection with its own message.
    #[error("{0}")]
    Refused(String),
}

impl AuthError {
    /// A stable label for metrics.
    pub fn reason_label(&self) -> &'static str {
        match self {
            AuthError::Required => "authentication_required",
            AuthError::Invalid => "invalid_token",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::UnknownKey => "unknown_signing_key",
            AuthError::InvalidIssuer => "invalid_issuer",
            AuthError::InvalidAudience => "invalid_audience",
            AuthError::MissingExpiry => "missing_expiry",
            AuthError::Refused(_) => "refused_by_host",
        }
    }
}

/// Where verification keys come from.
#[derive(Clone)]
enum Keys {
    /// No key configured: every token is refused.
    None,
    /// One key (an HS256 secret or a PEM public key) and the algorithm tokens must use.
    Static(DecodingKey, Algorithm),
    /// An identity provider's key set, selected by `kid`.
    Jwks(Arc<Jwks>),
}

/// Verifies tokens with the configured key or key set and claim rules.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Keys,
    rules: ClaimRules,
}

/// Why a configured JWT key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `jwt_public_key` is neither an RSA nor an EC public key in PEM form.
    #[error("JWT public key is not an RSA or EC public key in PEM form")]
    Pem,
    /// The JWKS URL or its extra CA cannot be used.
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

impl JwtVerifier {
    /// Prepares verification for the configuration's key (`jwt`) and claim rules. A JWKS
    /// source is shared by every verifier made from clones of one configuration: one
    /// engine's Socket.IO, SSE and Yjs endpoints fetch the provider's keys once.
    pub fn new(config: &Config) -> Result<Self, KeyError> {
        let keys = match &config.jwt {
            JwtKey::None => Keys::None,
            JwtKey::Secret(secret) => Keys::Static(
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            JwtKey::PublicKeyPem(pem) => {
                let pem = pem.as_bytes();
                if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                    Keys::Static(k, Algorithm::RS256)
                } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                    Keys::Static(k, Algorithm::ES256)
                } else {
                    return Err(KeyError::Pem);
                }
            }
            JwtKey::Jwks(source) => Keys::Jwks(jwks::jwks_of(source, config)?),
        };
        Ok(JwtVerifier {
            keys,
            rules: ClaimRules::from_config(config),
        })
    }

    /// Whether a key is configured.
    pub fn is_configured(&self) -> bool {
        !matches!(self.keys, Keys::None)
    }

    /// Fetches the identity provider's key set now, when there is one (at start-up: the
    /// outcome is logged, and a failure leaves tokens refused as "Unknown signing key" until
    /// a later fetch succeeds).
    pub async fn preload(&self) {
        if let Keys::Jwks(jwks) = &self.keys {
            jwks.load().await;
        }
    }

    /// Verifies a token and returns its user. With a JWKS this may wait for the provider
    /// (an unknown `kid`: at most once per refetch interval, shared by concurrent tokens).
    pub async fn verify(&self, token: &str) -> Result<User, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Required);
        }
        match &self.keys {
            Keys::None => Err(AuthError::Invalid),
            Keys::Static(key, alg) => self.decode(token, key, &[*alg]),
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
                let key = jwks.key(header.kid.as_deref()).await?;
                self.decode(token, &key.key, &key.algorithms)
            }
        }
    }

    #[cfg(any(test, feature = "testing"))]
    /// Verifies a token with a single configured key (no key set to fetch): for callers
    /// without a runtime, such as fuzz targets.
    pub fn verify_static(&self, token: &str) -> Result<User, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Required);
        }
        match &self.keys {
            Keys::Static(key, alg) => self.decode(token, key, &[*alg]),
            Keys::None | Keys::Jwks(_) => Err(AuthError::Invalid),
        }
    }

    /// Checks the signature with `key` (the token's `alg` must be one the key is for: an
    /// RSA key never verifies an HS256 token made with its public bytes) and the claims.
    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        algorithms: &[Algorithm],
    ) -> Result<User, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        if !algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid);
        }
        let validation = self.rules.validation(header.alg);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| claims::refusal(&e))?;
        self.rules.user(data.claims)
    }
}

pub use crate::helpers::token::bearer as bearer_token;

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn hs(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&Config::default().jwt_secret("s3cret")).unwrap()
    }

    #[test]
    fn valid_token_gives_the_user() {
        let t = hs(
            json!({"sub": "alice", "rooms": ["team-*"], "exp": now() + 60}),
            "s3cret",
        );
        let user = verifier().verify_static(&t).unwrap();
        assert_eq!(user.id, "alice");
        assert_eq!(user.username, "alice");
        assert_eq!(user.claim_allows("team-a"), Some(true));
        assert_eq!(user.claim_allows("lobby"), Some(false));
        let t = hs(
            json!({"sub": "bob", "username": "Bob", "rooms": "a, b*", "exp": now() + 60}),
            "s3cret",
        );
        let user = verifier().verify_static(&t).unwrap();
        assert_eq!(user.username, "Bob");
        assert_eq!(user.rooms, Some(vec!["a".into(), "b*".into()]));
    }

    #[test]
    fn refusals_have_the_contract_messages() {
        let v = verifier();
        assert_eq!(
            v.verify_static("").unwrap_err().to_string(),
            "Authentication required"
        );
        assert_eq!(
            v.verify_static("garbage").unwrap_err().to_string(),
            "Invalid token"
        );
        let wrong = hs(json!({"sub": "a", "exp": now() + 60}), "other");
        assert_eq!(v.verify_static(&wrong), Err(AuthError::Invalid));
        let no_sub = hs(json!({"name": "a", "exp": now() + 60}), "s3cret");
        assert_eq!(v.verify_static(&no_sub), Err(AuthError::Invalid));
        let expired = hs(json!({"sub": "a", "exp": now() - 5}), "s3cret");
        assert_eq!(
            v.verify_static(&expired).unwrap_err().to_string(),
            "Token expired"
        );
        // alg: none, with the payload of a valid token.
        let b64 = |s: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(r#"{"sub":"a"}"#)
        );
        assert_eq!(v.verify_static(&none), Err(AuthError::Invalid));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let v = verifier();
        let exp = now() + 2 * 86_400;
        let day_ahead = hs(
            json!({"sub": "a", "nbf": now() + 86_400, "exp": exp}),
            "s3cret",
        );
        assert_eq!(v.verify_static(&day_ahead), Err(AuthError::NotYetValid));
        assert_eq!(
            v.verify_static(&day_ahead).unwrap_err().to_string(),
            "Token not yet valid"
        );
        let minute_ahead = hs(json!({"sub": "a", "nbf": now() + 60, "exp": exp}), "s3cret");
        assert_eq!(v.verify_static(&minute_ahead), Err(AuthError::NotYetValid));
        let malformed = hs(json!({"sub": "a", "nbf": "tomorrow", "exp": exp}), "s3cret");
        assert_eq!(v.verify_static(&malformed), Err(AuthError::Invalid));
        let started = hs(json!({"sub": "a", "nbf": now() - 5, "exp": exp}), "s3cret");
        assert_eq!(v.verify_static(&started).unwrap().id, "a");
    }

    #[test]
    fn the_users_json_carries_the_expiry_only_as_a_claim() {
        let exp = now() + 60;
        let user = verifier()
            .verify_static(&hs(json!({"sub": "a", "exp": exp}), "s3cret"))
            .unwrap();
        assert_eq!(user.expires_at, Some(exp));
        assert!(!user.is_expired());
        assert!(user.expired_at(exp + 1));
        assert!(!user.expired_at(exp));
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({"id": "a", "username": "a", "claims": {"sub": "a", "exp": exp}})
        );
        let lenient = JwtVerifier::new(
            &Config::default()
                .jwt_secret("s3cret")
                .jwt_allow_no_exp(true),
        )
        .unwrap();
        let forever = lenient
            .verify_static(&hs(json!({"sub": "a"}), "s3cret"))
            .unwrap();
        assert_eq!(forever.expires_at, None);
        assert!(!forever.expired_at(u64::MAX));
    }

    #[test]
    fn every_claim_is_kept_on_the_user() {
        let key = JwtVerifier::new(&Config::default().jwt_secret("s3cret")).unwrap();
        let user = key
            .verify_static(&hs(
                json!({"sub": "a", "tenant": "acme", "role": ["admin"], "exp": now() + 60}),
                "s3cret",
            ))
            .unwrap();
        let claims = user.claims.as_ref().unwrap().to_map();
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(claims["role"], json!(["admin"]));
        let host_json = serde_json::to_value(&user).unwrap();
        assert_eq!(host_json["claims"]["tenant"], "acme");
    }

    #[test]
    fn the_kept_claims_are_no_larger_than_the_token() {
        // What a connection keeps of a large token is its claims' text: bounded by the
        // token, which the request head or the CONNECT payload limit bounds.
        let filler = "x".repeat(8000);
        let t = hs(
            json!({"sub": "a", "pad": filler, "exp": now() + 60}),
            "s3cret",
        );
        let user = verifier().verify_static(&t).unwrap();
        let kept = user.claims.as_ref().unwrap().as_json().len();
        assert!(kept > 8000 && kept < t.len(), "{kept} vs {}", t.len());
    }

    #[test]
    fn a_handed_over_user_keeps_its_expiry() {
        let user = User {
            id: "a".into(),
            username: "A".into(),
            rooms: Some(vec!["x*".into()]),
            expires_at: Some(1234),
            claims: Some(Claims::from_map(
                json!({"sub": "a", "tenant": "t1"}).as_object().unwrap(),
            )),
        };
        let json = user.to_session_json();
        assert_eq!(User::from_session_json(&json), Some(user.clone()));
        // From a node that predates the expiry: no expiry known.
        let old = User::from_session_json(r#"{"id":"a","username":"A"}"#).unwrap();
        assert_eq!(old.expires_at, None);
        assert_eq!(User::from_session_json("[]"), None);
    }

    #[test]
    fn exp_is_required_unless_allowed() {
        let no_exp = hs(json!({"sub": "a"}), "s3cret");
        assert_eq!(
            verifier().verify_static(&no_exp),
            Err(AuthError::MissingExpiry)
        );
        assert_eq!(AuthError::MissingExpiry.to_string(), "Token has no expiry");
    }

    #[test]
    fn issuer_audience_and_leeway_are_checked_with_their_messages() {
        let config = Config::default()
            .jwt_secret("s3cret")
            .jwt_issuers(vec![
                "https://a.example/".into(),
                "https://b.example/".into(),
            ])
            .jwt_audiences(vec!["chat".into()])
            .jwt_leeway(std::time::Duration::from_secs(30));
        let v = JwtVerifier::new(&config).unwrap();
        let exp = now() + 60;
        let ok = |claims: Value| v.verify_static(&hs(claims, "s3cret"));
        let good =
            json!({"sub": "a", "exp": exp, "iss": "https://b.example/", "aud": ["x", "chat"]});
        assert_eq!(ok(good).unwrap().id, "a");
        let wrong_iss =
            json!({"sub": "a", "exp": exp, "iss": "https://evil.example/", "aud": "chat"});
        assert_eq!(ok(wrong_iss), Err(AuthError::InvalidIssuer));
        let no_iss = json!({"sub": "a", "exp": exp, "aud": "chat"});
        assert_eq!(ok(no_iss), Err(AuthError::InvalidIssuer));
        let wrong_aud = json!({"sub": "a", "exp": exp, "iss": "https://a.example/", "aud": "api"});
        assert_eq!(ok(wrong_aud), Err(AuthError::InvalidAudience));
        let no_aud = json!({"sub": "a", "exp": exp, "iss": "https://a.example/"});
        assert_eq!(ok(no_aud), Err(AuthError::InvalidAudience));
        // Within the leeway: expired 10 s ago is still accepted; 40 s ago is not.
        let base = json!({"sub": "a", "iss": "https://a.example/", "aud": "chat"});
        let with_exp = |e: u64| {
            let mut c = base.clone();
            c["exp"] = json!(e);
            c
        };
        assert!(ok(with_exp(now() - 10)).is_ok());
        assert_eq!(ok(with_exp(now() - 40)), Err(AuthError::Expired));
        assert_eq!(AuthError::InvalidIssuer.to_string(), "Invalid token issuer");
        assert_eq!(
            AuthError::InvalidAudience.to_string(),
            "Invalid token audience"
        );
        // Without a configured audience `aud` is not checked (as before this setting).
        let plain = verifier();
        let aud = hs(json!({"sub": "a", "exp": exp, "aud": "other"}), "s3cret");
        assert_eq!(plain.verify_static(&aud).unwrap().id, "a");
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("team-*", "team-"));
        assert!(pattern_matches("*", "anything"));
        assert!(!pattern_matches("lobby", "lobby2"));
    }
}
