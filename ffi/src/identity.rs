//! `sb_config` identity settings: an identity provider's JWKS, issuer and audience checks,
//! clock leeway, claim names, and how connections are bound to their token's expiry.

use std::ffi::c_char;
use std::time::Duration;

use crate::args;
use crate::config::{ms, sb_config, update};
use crate::result::sb_result;

/// Verifies tokens with the keys an identity provider publishes at this JWKS URL
/// (`https://…`, or `http://` to a loopback host; checked by `sb_engine_new`). Keys are
/// selected by the token's `kid`, refetched for unknown ones at most once per refetch
/// interval, and the last good set is kept while the provider is down.
///
/// Ownership: `url` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwks_url(
    config: *mut sb_config,
    url: *const c_char,
) -> sb_result {
    ffi! {
        let url = args::name(url, "url")?.to_owned();
        update(config, |c| Ok(c.jwks_url(url)))
    }
}

/// Also trusts the PEM CA certificate(s) in the file at `path` for the JWKS URL (a private
/// CA); read by `sb_engine_new`.
///
/// Ownership: `path` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwks_ca_file(
    config: *mut sb_config,
    path: *const c_char,
) -> sb_result {
    ffi! {
        let path = args::name(path, "path")?.to_owned();
        update(config, |c| Ok(c.jwks_ca_file(path)))
    }
}

/// Sets the shortest time between JWKS fetches for tokens with an unknown `kid`, in
/// milliseconds (>= 500; default 10000).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwks_refetch_interval_ms(
    config: *mut sb_config,
    milliseconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.jwks_refetch_interval(ms(milliseconds)))) }
}

/// Accepts tokens whose `iss` is this issuer; call once per accepted issuer. Without any,
/// `iss` is not checked.
///
/// Ownership: `issuer` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_add_jwt_issuer(
    config: *mut sb_config,
    issuer: *const c_char,
) -> sb_result {
    ffi! {
        let issuer = args::name(issuer, "issuer")?.to_owned();
        update(config, |c| {
            let mut list = c.jwt_issuers.clone();
            list.push(issuer);
            Ok(c.jwt_issuers(list))
        })
    }
}

/// Accepts tokens whose `aud` names this audience; call once per accepted audience. Without
/// any, `aud` is not checked.
///
/// Ownership: `audience` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_add_jwt_audience(
    config: *mut sb_config,
    audience: *const c_char,
) -> sb_result {
    ffi! {
        let audience = args::name(audience, "audience")?.to_owned();
        update(config, |c| {
            let mut list = c.jwt_audiences.clone();
            list.push(audience);
            Ok(c.jwt_audiences(list))
        })
    }
}

/// Sets the clock skew allowed for `exp` and `nbf`, in seconds (<= 300; default 0).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwt_leeway_secs(
    config: *mut sb_config,
    seconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.jwt_leeway(Duration::from_secs(seconds)))) }
}

/// Accepts tokens without `exp` (they never expire) when `allow` is true; by default `exp`
/// is required ("Token has no expiry").
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwt_allow_no_exp(
    config: *mut sb_config,
    allow: bool,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.jwt_allow_no_exp(allow))) }
}

/// Sets the claim that is the user id (default `"sub"`; e.g. `"email"`).
///
/// Ownership: `claim` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwt_user_id_claim(
    config: *mut sb_config,
    claim: *const c_char,
) -> sb_result {
    ffi! {
        let claim = args::name(claim, "claim")?.to_owned();
        update(config, |c| Ok(c.jwt_user_id_claim(claim)))
    }
}

/// Sets the claim that is the display name (default `"username"`; e.g. `"name"`).
///
/// Ownership: `claim` is borrowed (copied). Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_jwt_username_claim(
    config: *mut sb_config,
    claim: *const c_char,
) -> sb_result {
    ffi! {
        let claim = args::name(claim, "claim")?.to_owned();
        update(config, |c| Ok(c.jwt_username_claim(claim)))
    }
}

/// Sets how long before its token's `exp` a Socket.IO connection is sent `tokenExpiring`,
/// in seconds (default 30; at most half the token's remaining lifetime is used).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_token_expiry_warning_secs(
    config: *mut sb_config,
    seconds: u64,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.token_expiry_warning(Duration::from_secs(seconds)))) }
}

/// Keeps connections open past their token's `exp` when `allow` is true (by default they
/// end at `exp`: Socket.IO disconnect, SSE `token-expired`, Yjs close 4401).
///
/// Thread-safety: see `sb_config`.
#[no_mangle]
pub unsafe extern "C" fn sb_config_set_allow_expired_connections(
    config: *mut sb_config,
    allow: bool,
) -> sb_result {
    ffi! { update(config, |c| Ok(c.allow_expired_connections(allow))) }
}
