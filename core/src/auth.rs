//! Who a connection is: JWT verification and the authenticated [`User`].

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::JwtKey;

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
    /// so their hooks need no lookup. Bounded by the request head that carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Arc<Map<String, Value>>>,
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

/// Why a connection was refused. The `Display` text is the exact message clients receive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("Authentication required")]
    Required,
    /// The token is malformed, badly signed, uses another algorithm, lacks `sub`, or is not
    /// valid yet (`nbf` in the future).
    #[error("Invalid token")]
    Invalid,
    /// The token's `exp` has passed.
    #[error("Token expired")]
    Expired,
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
            AuthError::Refused(_) => "refused_by_host",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    username: Option<String>,
    rooms: Option<RoomsClaim>,
    /// Already checked by `jsonwebtoken`; kept so recovery can refuse a session past it.
    exp: Option<u64>,
}

/// `rooms` may be a list or one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RoomsClaim {
    List(Vec<String>),
    Joined(String),
}

impl RoomsClaim {
    fn into_list(self) -> Vec<String> {
        match self {
            RoomsClaim::List(v) => v,
            RoomsClaim::Joined(s) => s
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// Verifies tokens with the configured key.
#[derive(Clone)]
pub struct JwtVerifier {
    key: Option<(DecodingKey, Validation)>,
}

/// Why a configured JWT key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JWT public key is not an RSA or EC public key in PEM form")]
pub struct KeyError;

impl JwtVerifier {
    /// Prepares verification for the configured key.
    pub fn new(key: &JwtKey) -> Result<Self, KeyError> {
        let key = match key {
            JwtKey::None => None,
            JwtKey::Secret(secret) => Some((
                DecodingKey::from_secret(secret.as_bytes()),
                validation(Algorithm::HS256),
            )),
            JwtKey::PublicKeyPem(pem) => {
                let pem = pem.as_bytes();
                if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                    Some((k, validation(Algorithm::RS256)))
                } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                    Some((k, validation(Algorithm::ES256)))
                } else {
                    return Err(KeyError);
                }
            }
        };
        Ok(JwtVerifier { key })
    }

    /// Whether a key is configured.
    pub fn is_configured(&self) -> bool {
        self.key.is_some()
    }

    /// Verifies a token and returns its user.
    pub fn verify(&self, token: &str) -> Result<User, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Required);
        }
        let Some((key, validation)) = &self.key else {
            return Err(AuthError::Invalid);
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            },
        )?;
        let all_claims = data.claims;
        let claims = Claims::deserialize(Value::Object(all_claims.clone()))
            .map_err(|_| AuthError::Invalid)?;
        let id = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Invalid)?;
        Ok(User {
            username: claims
                .username
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| id.clone()),
            id,
            rooms: claims.rooms.map(RoomsClaim::into_list),
            expires_at: claims.exp,
            claims: Some(Arc::new(all_claims)),
        })
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    // `exp` is checked when present; tokens without it are accepted, as most issuers'
    // long-lived service tokens have none.
    v.required_spec_claims.clear();
    v.leeway = 0;
    // A token that is not valid yet (`nbf` ahead, beyond the same leeway as `exp`) is
    // refused: an issuer may mint tokens ahead for later use.
    v.validate_nbf = true;
    v.validate_aud = false;
    v
}

/// Takes the token from an `Authorization: Bearer …` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

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
        JwtVerifier::new(&JwtKey::Secret("s3cret".into())).unwrap()
    }

    #[test]
    fn valid_token_gives_the_user() {
        let t = hs(
            json!({"sub": "alice", "rooms": ["team-*"], "exp": now() + 60}),
            "s3cret",
        );
        let user = verifier().verify(&t).unwrap();
        assert_eq!(user.id, "alice");
        assert_eq!(user.username, "alice");
        assert_eq!(user.claim_allows("team-a"), Some(true));
        assert_eq!(user.claim_allows("lobby"), Some(false));
        let t = hs(
            json!({"sub": "bob", "username": "Bob", "rooms": "a, b*"}),
            "s3cret",
        );
        let user = verifier().verify(&t).unwrap();
        assert_eq!(user.username, "Bob");
        assert_eq!(user.rooms, Some(vec!["a".into(), "b*".into()]));
    }

    #[test]
    fn refusals_have_the_contract_messages() {
        let v = verifier();
        assert_eq!(
            v.verify("").unwrap_err().to_string(),
            "Authentication required"
        );
        assert_eq!(
            v.verify("garbage").unwrap_err().to_string(),
            "Invalid token"
        );
        let wrong = hs(json!({"sub": "a"}), "other");
        assert_eq!(v.verify(&wrong), Err(AuthError::Invalid));
        let no_sub = hs(json!({"name": "a"}), "s3cret");
        assert_eq!(v.verify(&no_sub), Err(AuthError::Invalid));
        let expired = hs(json!({"sub": "a", "exp": now() - 5}), "s3cret");
        assert_eq!(v.verify(&expired).unwrap_err().to_string(), "Token expired");
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
        assert_eq!(v.verify(&none), Err(AuthError::Invalid));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let v = verifier();
        let day_ahead = hs(json!({"sub": "a", "nbf": now() + 86_400}), "s3cret");
        assert_eq!(v.verify(&day_ahead), Err(AuthError::Invalid));
        assert_eq!(
            v.verify(&day_ahead).unwrap_err().to_string(),
            "Invalid token"
        );
        let minute_ahead = hs(json!({"sub": "a", "nbf": now() + 60}), "s3cret");
        assert_eq!(v.verify(&minute_ahead), Err(AuthError::Invalid));
        let malformed = hs(json!({"sub": "a", "nbf": "tomorrow"}), "s3cret");
        assert_eq!(v.verify(&malformed), Err(AuthError::Invalid));
        let started = hs(json!({"sub": "a", "nbf": now() - 5}), "s3cret");
        assert_eq!(v.verify(&started).unwrap().id, "a");
    }

    #[test]
    fn the_users_json_carries_the_expiry_only_as_a_claim() {
        let exp = now() + 60;
        let user = verifier()
            .verify(&hs(json!({"sub": "a", "exp": exp}), "s3cret"))
            .unwrap();
        assert_eq!(user.expires_at, Some(exp));
        assert!(!user.is_expired());
        assert!(user.expired_at(exp + 1));
        assert!(!user.expired_at(exp));
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({"id": "a", "username": "a", "claims": {"sub": "a", "exp": exp}})
        );
        let forever = verifier()
            .verify(&hs(json!({"sub": "a"}), "s3cret"))
            .unwrap();
        assert_eq!(forever.expires_at, None);
        assert!(!forever.expired_at(u64::MAX));
    }

    #[test]
    fn every_claim_is_kept_on_the_user() {
        let key = JwtVerifier::new(&JwtKey::Secret("s3cret".into())).unwrap();
        let user = key
            .verify(&hs(
                json!({"sub": "a", "tenant": "acme", "role": ["admin"]}),
                "s3cret",
            ))
            .unwrap();
        let claims = user.claims.as_deref().unwrap();
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(claims["role"], json!(["admin"]));
        let host_json = serde_json::to_value(&user).unwrap();
        assert_eq!(host_json["claims"]["tenant"], "acme");
    }

    #[test]
    fn a_handed_over_user_keeps_its_expiry() {
        let user = User {
            id: "a".into(),
            username: "A".into(),
            rooms: Some(vec!["x*".into()]),
            expires_at: Some(1234),
            claims: Some(Arc::new(
                json!({"sub": "a", "tenant": "t1"})
                    .as_object()
                    .unwrap()
                    .clone(),
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
