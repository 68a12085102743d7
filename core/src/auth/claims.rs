//! What a verified token must say and how it becomes a [`User`]: issuer, audience, clock
//! leeway, the required `exp`, and which claims name the user.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
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
            claims: Some(Arc::new(claims)),
        })
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
}
