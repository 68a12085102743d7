//! CORS: which browser origins may call the engine and read its answers, preflights, and the
//! headers every answer to a browser carries.

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use super::http::HttpReply;

/// The verdict on a request's `Origin`.
pub(super) enum OriginCheck {
    /// No `Origin` header: not a browser, no CORS headers.
    Absent,
    /// In the configured list: echo it in CORS headers, with credentials.
    Allowed(HeaderValue),
    /// No list configured (the development default) or `*` in it: any page may call and
    /// read, but never with credentials, so a foreign page cannot ride a user's cookies.
    AnyWithoutCredentials,
    /// Not in the configured list.
    Refused,
}

/// Decides on a request's `Origin` against the configured origins.
pub(super) fn check_origin(origins: &[String], headers: &HeaderMap) -> OriginCheck {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return OriginCheck::Absent;
    };
    let listed = origin
        .to_str()
        .is_ok_and(|o| origins.iter().any(|a| a == o));
    if listed {
        OriginCheck::Allowed(origin.clone())
    } else if origins.is_empty() || origins.iter().any(|a| a == "*") {
        OriginCheck::AnyWithoutCredentials
    } else {
        OriginCheck::Refused
    }
}

/// The request headers the engine reads from browsers: the bearer token, the polling and API
/// bodies' type, and SSE's resume point. A preflight allows these only, not whatever it is
/// asked for.
const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";

/// (The request's `Access-Control-Request-Headers` is not echoed: see `CORS_ALLOW_HEADERS`.)
pub(super) fn preflight(_headers: &HeaderMap) -> HttpReply {
    let mut reply = HttpReply::empty(StatusCode::NO_CONTENT);
    reply.headers.push((
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    ));
    reply.headers.push((
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    ));
    reply
}

pub(super) fn add_cors(reply: &mut HttpReply, origin: &OriginCheck) {
    match origin {
        OriginCheck::Allowed(origin) => {
            reply
                .headers
                .push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            reply.headers.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
            reply
                .headers
                .push((header::VARY, HeaderValue::from_static("Origin")));
        }
        // `*` cannot carry credentials: a page that sends cookies along does not get to
        // read the answer. `Vary`: with a list that also names origins, the answer differs.
        OriginCheck::AnyWithoutCredentials => {
            reply.headers.push((
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ));
            reply
                .headers
                .push((header::VARY, HeaderValue::from_static("Origin")));
        }
        OriginCheck::Absent | OriginCheck::Refused => {}
    }
}
