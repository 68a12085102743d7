//! The identity settings' setters (JWKS, issuer and audience, claim names, token expiry),
//! beside the verification they configure; the fields and defaults are in [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, JwtKey};

/// The items of a list setting, trimmed, without empty ones.
fn non_empty_items(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect()
}

/// A claim name as given, trimmed (an empty one is refused by [`Config::validate`]).
fn claim_name(claim: impl Into<String>) -> String {
    claim.into().trim().to_owned()
}

impl Config {
    /// Verifies tokens with the keys an identity provider publishes at this JWKS URL:
    /// `https://`, or `http://` to a loopback host only (checked when the engine is built).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwt = JwtKey::Jwks(crate::config::JwksSource::new(url));
        self
    }

    /// Also trusts the PEM CA certificate(s) in this file for the JWKS URL.
    pub fn jwks_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.jwks_ca_file = Some(path.into());
        self
    }

    /// Sets the shortest time between JWKS fetches for unknown `kid`s (at least 500 ms).
    pub fn jwks_refetch_interval(mut self, d: Duration) -> Self {
        self.jwks_refetch_interval = d;
        self
    }

    /// Accepts tokens from these issuers only (replaces the list; empty accepts any).
    pub fn jwt_issuers(mut self, issuers: Vec<String>) -> Self {
        self.jwt_issuers = non_empty_items(issuers);
        self
    }

    /// Accepts tokens for these audiences only (replaces the list).
    pub fn jwt_audiences(mut self, audiences: Vec<String>) -> Self {
        self.jwt_audiences = non_empty_items(audiences);
        self
    }

    /// Sets the clock skew allowed for `exp` and `nbf` (at most 5 minutes).
    pub fn jwt_leeway(mut self, d: Duration) -> Self {
        self.jwt_leeway = d;
        self
    }

    /// Accepts tokens without `exp` (never expiring) when `allow` is true.
    pub fn jwt_allow_no_exp(mut self, allow: bool) -> Self {
        self.jwt_allow_no_exp = allow;
        self
    }

    /// Sets the claim that is the user id (e.g. `sub`, `email`, `user_id`).
    pub fn jwt_user_id_claim(mut self, claim: impl Into<String>) -> Self {
        self.jwt_user_id_claim = claim_name(claim);
        self
    }

    /// Sets the claim that is the display name (e.g. `name`, `preferred_username`).
    pub fn jwt_username_claim(mut self, claim: impl Into<String>) -> Self {
        self.jwt_username_claim = claim_name(claim);
        self
    }

    /// Sets how long before a token's `exp` its connection is sent `tokenExpiring`.
    pub fn token_expiry_warning(mut self, d: Duration) -> Self {
        self.token_expiry_warning = d;
        self
    }

    /// Keeps connections open past their token's `exp` when `allow` is true.
    pub fn allow_expired_connections(mut self, allow: bool) -> Self {
        self.allow_expired_connections = allow;
        self
    }
}
