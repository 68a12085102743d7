//! The request head the front door routes on, and what a session keeps of it.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::transport::HandshakeInfo;

/// A request head, independent of the HTTP library that parsed it (hyper, or Node when a
/// host hands requests over).
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target (path and query).
    pub uri: http::Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The client's address.
    pub peer: SocketAddr,
}

impl RequestHead {
    pub(super) fn query(&self) -> String {
        self.uri.query().unwrap_or("").to_owned()
    }

    pub(crate) fn handshake(&self) -> HandshakeInfo {
        HandshakeInfo {
            headers: compact_headers(&self.headers),
            query: self.query(),
            address: self.peer,
        }
    }

    /// The same request with another path (the query kept): the front door routes on the
    /// path without the configured prefix. `None` when the result is no valid target.
    pub(super) fn with_path(&self, path: &str) -> Option<RequestHead> {
        let target = match self.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        Some(RequestHead {
            method: self.method.clone(),
            uri: target.parse().ok()?,
            headers: self.headers.clone(),
            peer: self.peer,
        })
    }

    /// Whether the request asks for a WebSocket upgrade.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.method == Method::GET
            && self
                .headers
                .get(header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }
}

/// Headers that only serve the request they came with (the WebSocket handshake, the
/// body's framing, caching): a session has no use for them once open.
const TRANSIENT_HEADERS: &[HeaderName] = &[
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::TRANSFER_ENCODING,
    header::CACHE_CONTROL,
    header::PRAGMA,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
];

/// The handshake headers a session keeps for its life (host hooks and handlers read them):
/// every header but the transient ones, copied out of the HTTP parser's read buffer. Parsed
/// header values are slices of that buffer (8 KiB or more), so keeping them would keep the
/// whole buffer alive per idle connection; what is kept is bounded by `max_header_bytes`.
fn compact_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if TRANSIENT_HEADERS.contains(name) {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            out.append(name.clone(), v);
        }
    }
    out
}
