//! What a verified token must say and how it becomes a [`User`]: issuer, audience, clock
//! leeway, the required `exp`, and which claims name the user.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{AuthError, User};
use crate::config::Config;

/// The claim checks and claim names of the configuration, prepared once.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
    require_exp: bool,
    user_id_claim: String,
    username_claim: String,
}

impl Default for ClaimRules {
    fn default() -> Self {
        ClaimRules::from_config(&Config::default())
    }
}

impl ClaimRules {
    /// The rules the configuration sets.
    pub(crate) fn from_config(config: &Config) -> Self {
        ClaimRules {
            issuers: config.jwt_issuers.clone(),
            audiences: config.jwt_audiences.clone(),
            leeway: config.jwt_leeway.as_secs(),
            require_exp: !config.jwt_allow_no_exp,
            user_id_claim: config.jwt_user_id_claim.clone(),
            username_claim: config.jwt_username_claim.clone(),
        }
    }

    /// What `jsonwebtoken` checks for a token signed with `alg`.
    pub(crate) fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.required_spec_claims.clear();
        if self.require_exp {
            v.required_spec_claims.insert("exp".into());
        }
        v.leeway = self.leeway;
        // A token that is not valid yet (`nbf` ahead, beyond the leeway) is refused: an
        // issuer may mint tokens ahead for later use.
        v.validate_nbf = true;
        if !self.issuers.is_empty() {
            // `jsonwebtoken` checks `iss` only when present: a configured issuer makes it
            // required, or a token from anywhere without `iss` would pass.
            v.required_spec_claims.insert("iss".into());
            v.set_issuer(&self.issuers);
        }
        if self.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.required_spec_claims.insert("aud".into());
            v.set_audience(&self.audiences);
        }
        v
    }

    /// The user a verified token's claims describe (every claim kept on it).
    pub(crate) fn user(&self, claims: Map<String, Value>) -> Result<User, AuthError> {
        let id = claim_text(claims.get(&self.user_id_claim)).ok_or(AuthError::Invalid)?;
        let username = claim_text(claims.get(&self.username_claim)).unwrap_or_else(|| id.clone());
        let rooms = match claims.get("rooms") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                RoomsClaim::deserialize(v)
                    .map_err(|_| AuthError::Invalid)?
                    .into_list(),
            ),
        };
        let expires_at = claims.get("exp").and_then(numeric_date);
        Ok(User {
            id,
            username,
            rooms,
            expires_at,
            claims: Some(Claims::from_map(&claims)),
        })
    }
}

/// Every claim a credential made about a user, kept as the JSON text of one object and parsed
/// when asked for. A parsed map costs an idle connection ~450 bytes in several allocations
/// (an index, entries, a string per key and value) for its whole life, while hosts read it at
/// most once per hook call. Cloning shares the text.
///
/// The text is what [`Claims::from_map`] wrote: compact, keys in the map's order, each once.
/// Its size is bounded by the credential that carried it (a token: the request head's limit;
/// a host hook's object: what the host returned).
#[derive(Clone)]
pub struct Claims(Arc<str>);

impl Claims {
    /// The claims of an object.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        // A map of JSON values always serializes; the fallback is never taken.
        Claims(
            serde_json::to_string(map)
                .unwrap_or_else(|_| "{}".into())
                .into(),
        )
    }

    /// The claims as the JSON text of one object.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The claims as a map (parsed on each call).
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// One claim's value (parsing the claims on each call); `None` when absent.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.to_map().remove(name)
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Self {
        Claims::from_map(&map)
    }
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        // The same text is the same claims; otherwise compare as maps (two hosts' objects
        // may list the same keys in another order).
        self.0 == other.0 || self.to_map() == other.to_map()
    }
}

impl Eq for Claims {}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Claims {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Written as the object it is, not as a string: the user's JSON reads as before.
        match serde_json::from_str::<&RawValue>(&self.0) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => Map::new().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(|map| Claims::from_map(&map))
    }
}

/// A claim as text: a non-empty string, or a number (some providers' user ids are numeric).
fn claim_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JWT NumericDate (`exp`): whole seconds, or a fraction rounded as `jsonwebtoken` does.
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f.round() as u64)
    })
}

/// The refusal a failed `jsonwebtoken` check means for the client.
pub(crate) fn refusal(error: &jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
        ErrorKind::InvalidAudience => AuthError::InvalidAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => AuthError::InvalidIssuer,
            "aud" => AuthError::InvalidAudience,
            "exp" => AuthError::MissingExpiry,
            _ => AuthError::Invalid,
        },
        _ => AuthError::Invalid,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn claim_names_are_configurable() {
        let config = Config::default()
            .jwt_user_id_claim("email")
            .jwt_username_claim("preferred_username");
        let rules = ClaimRules::from_config(&config);
        let user = rules
            .user(map(
                json!({"sub": "auth0|1", "email": "a@x.io", "preferred_username": "Ann"}),
            ))
            .unwrap();
        assert_eq!(
            (user.id.as_str(), user.username.as_str()),
            ("a@x.io", "Ann")
        );
        // Without the id claim: refused, even though `sub` is there.
        assert_eq!(
            rules.user(map(json!({"sub": "auth0|1"}))),
            Err(AuthError::Invalid)
        );
        // A numeric id is text; a missing display name falls back to the id.
        let user = rules.user(map(json!({"email": 42}))).unwrap();
        assert_eq!((user.id.as_str(), user.username.as_str()), ("42", "42"));
    }

    #[test]
    fn issuer_and_audience_become_required_claims() {
        let config = Config::default()
            .jwt_issuers(vec!["https://idp.example/".into()])
            .jwt_audiences(vec!["chat".into(), "api".into()]);
        let v = ClaimRules::from_config(&config).validation(Algorithm::RS256);
        for claim in ["exp", "iss", "aud"] {
            assert!(v.required_spec_claims.contains(claim), "{claim}");
        }
        assert!(v.validate_aud);
        let open = ClaimRules::default().validation(Algorithm::RS256);
        assert!(!open.validate_aud);
        assert!(!open.required_spec_claims.contains("iss"));
    }

    #[test]
    fn claims_are_kept_as_text_and_read_back_as_the_object() {
        let rules = ClaimRules::default();
        let user = rules
            .user(map(json!({"sub": "ann", "tenant": "acme", "n": 1})))
            .unwrap();
        let claims = user.claims.clone().unwrap();
        assert_eq!(claims.as_json(), r#"{"sub":"ann","tenant":"acme","n":1}"#);
        assert_eq!(claims.get("tenant"), Some(json!("acme")));
        assert_eq!(claims.get("missing"), None);
        // The user's JSON has them as an object, and reads back the same.
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!(v["claims"], json!({"sub": "ann", "tenant": "acme", "n": 1}));
        let back: User = serde_json::from_value(v).unwrap();
        assert_eq!(back.claims, user.claims);
        assert_eq!(
            serde_json::to_string(&claims).unwrap(),
            r#"{"sub":"ann","tenant":"acme","n":1}"#
        );
        // Equal whatever the order of their keys.
        let other = Claims::from(map(json!({"n": 1, "tenant": "acme", "sub": "ann"})));
        assert_eq!(claims, other);
        assert_ne!(claims, Claims::from(map(json!({"sub": "bob"}))));
    }
}
