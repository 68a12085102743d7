//! Finding the token a client presents, in one documented order for every endpoint.

use http::header::{HeaderMap, AUTHORIZATION};
use serde_json::Value;

use super::percent::query_param;

/// The client's token, looked up in this order; the first **non-empty** one wins:
///
/// 1. `auth_payload.token`, when it is a string (Socket.IO's `io(url, { auth: { token } })`;
///    SSE and Yjs have no payload and pass `None`);
/// 2. the `Authorization: Bearer <token>` header (scheme case-insensitive);
/// 3. the `token` query parameter, percent-decoded (`?token=`, what browsers' `EventSource`
///    and y-websocket clients can send).
///
/// Socket.IO, SSE, Yjs and the fuzz facade all call this, so they accept the same places.
/// `None`: no token anywhere (the caller answers "Authentication required").
pub fn find(headers: &HeaderMap, query: &str, auth_payload: Option<&Value>) -> Option<String> {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    find_in(authorization, query, auth_payload)
}

/// [`find`] given the `Authorization` header's value, for callers that keep headers in
/// another form than a map (a session's [`crate::transport::HandshakeInfo`]).
pub fn find_in(
    authorization: Option<&str>,
    query: &str,
    auth_payload: Option<&Value>,
) -> Option<String> {
    let from_auth = auth_payload
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty());
    if let Some(token) = from_auth {
        return Some(token.to_owned());
    }
    let from_header = authorization.and_then(bearer).filter(|t| !t.is_empty());
    if let Some(token) = from_header {
        return Some(token.to_owned());
    }
    query_param(query, "token").filter(|t| !t.trim().is_empty())
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive,
/// surrounding spaces trimmed); `None` for another scheme or an empty token.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, authorization.parse().unwrap());
        h
    }

    #[test]
    fn payload_then_header_then_query() {
        let auth = json!({"token": "a"});
        let h = headers("Bearer h");
        assert_eq!(find(&h, "token=q", Some(&auth)).as_deref(), Some("a"));
        assert_eq!(find(&h, "token=q", None).as_deref(), Some("h"));
        assert_eq!(
            find(&HeaderMap::new(), "x=1&token=q%2B", None).as_deref(),
            Some("q+")
        );
        assert_eq!(find(&HeaderMap::new(), "", None), None);
    }

    #[test]
    fn empty_and_non_string_values_fall_through() {
        let h = headers("Bearer ");
        assert_eq!(
            find(&h, "token=q", Some(&json!({"token": ""}))).as_deref(),
            Some("q")
        );
        assert_eq!(
            find(&h, "token=q", Some(&json!({"token": 5}))).as_deref(),
            Some("q")
        );
        assert_eq!(find(&headers("Basic x"), "token=", None), None);
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
