//! The request head the front door routes on, and what a session keeps of it.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName};
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
        let kept = self
            .headers
            .iter()
            .filter(|(name, _)| !TRANSIENT_HEADERS.contains(name));
        HandshakeInfo::from_pairs(kept, self.uri.query().unwrap_or(""), self.peer)
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
/// body's framing, caching): a session has no use for them once open. What a session keeps
/// is copied out of the HTTP parser's read buffer (parsed values are slices of it, 8 KiB or
/// more per connection otherwise), bounded by `max_header_bytes`.
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
