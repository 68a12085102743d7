//! Where the engine's endpoints live: the `prefix` every path sits under, and which
//! endpoints are served at all (settings of [`Config`], applied by the HTTP front door).

use serde::Serialize;

use crate::config::Config;

/// The paths the engine answers, as a host routes them (the Fastify plugin registers one
/// route per path). `None` is an endpoint turned off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Endpoints {
    /// The Socket.IO path, e.g. `/rt/socket.io/`.
    pub socketio: String,
    /// The SSE stream, e.g. `/rt/events`.
    pub events: Option<String>,
    /// The server HTTP API's prefix, e.g. `/rt/api/`.
    pub api: Option<String>,
    /// The Yjs documents' prefix, e.g. `/rt/yjs/`.
    pub yjs: Option<String>,
    /// Prometheus metrics, e.g. `/rt/metrics`.
    pub metrics: Option<String>,
    /// The readiness probe, e.g. `/rt/healthz`.
    pub healthz: Option<String>,
    /// The plain-WebSocket endpoint, e.g. `/rt/ws`.
    pub ws: Option<String>,
}

impl Config {
    /// Serves every endpoint under `prefix` (`/rt` → `/rt/socket.io/`, `/rt/events`, …), so
    /// that the engine shares a host's URL space without taking its root. It must start with
    /// `/` (checked by [`Config::validate`]); a trailing `/` is dropped, and `/` or an empty
    /// string means the root.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        // Only normalized here; the rules are checked by [`Config::validate`].
        self.prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    /// Turns the SSE stream (`/events`) on or off.
    pub fn sse(mut self, on: bool) -> Self {
        self.sse = on;
        self
    }

    /// Turns the server HTTP API (`/api/…`) on or off.
    pub fn api(mut self, on: bool) -> Self {
        self.api = on;
        self
    }

    /// Turns the Yjs documents endpoint on or off.
    pub fn yjs(mut self, on: bool) -> Self {
        self.yjs = on;
        self
    }

    /// Turns `/metrics` on or off.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Turns `/healthz` on or off.
    pub fn healthz(mut self, on: bool) -> Self {
        self.healthz = on;
        self
    }

    /// Turns the plain-WebSocket endpoint (`/ws`) on or off.
    pub fn ws(mut self, on: bool) -> Self {
        self.ws = on;
        self
    }

    /// Every endpoint's full path (with the prefix), `None` for those turned off.
    pub fn endpoints(&self) -> Endpoints {
        let p = &self.prefix;
        let on = |enabled: bool, path: &str| enabled.then(|| format!("{p}{path}"));
        Endpoints {
            socketio: format!("{p}{}", self.path),
            events: on(self.sse, "/events"),
            api: on(self.api, "/api/"),
            yjs: on(self.yjs, &self.yjs_path),
            metrics: on(self.metrics, "/metrics"),
            healthz: on(self.healthz, "/healthz"),
            ws: on(self.ws, "/ws"),
        }
    }

    /// `path` without the prefix, or `None` when it is not under the prefix (`/rt` takes
    /// `/rt` and `/rt/…`, not `/rtx`).
    pub fn strip_prefix<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(path);
        }
        match path.strip_prefix(self.prefix.as_str())? {
            "" => Some("/"),
            rest if rest.starts_with('/') => Some(rest),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_checked_and_normalized() {
        assert_eq!(Config::default().prefix("/rt/").prefix, "/rt");
        assert_eq!(Config::default().prefix("/").prefix, "");
        assert_eq!(Config::default().prefix("").prefix, "");
        for bad in ["rt", "/r t", "/rt?x", "/a%20b"] {
            let err = Config::default().prefix(bad).validate().unwrap_err();
            assert!(err.to_string().contains("invalid prefix"), "{bad}: {err}");
        }
        assert!(Config::default()
            .prefix(format!("/{}", "a".repeat(300)))
            .validate()
            .is_err());
    }

    #[test]
    fn endpoints_follow_prefix_and_toggles() {
        let c = Config::default().prefix("/rt").sse(false).metrics(false);
        let e = c.endpoints();
        assert_eq!(e.socketio, "/rt/socket.io/");
        assert_eq!(e.events, None);
        assert_eq!(e.api.as_deref(), Some("/rt/api/"));
        assert_eq!(e.yjs.as_deref(), Some("/rt/yjs/"));
        assert_eq!(e.metrics, None);
        assert_eq!(e.healthz.as_deref(), Some("/rt/healthz"));
        assert_eq!(c.strip_prefix("/rt/events"), Some("/events"));
        assert_eq!(c.strip_prefix("/rt"), Some("/"));
        assert_eq!(c.strip_prefix("/rtx/events"), None);
        assert_eq!(c.strip_prefix("/events"), None);
        assert_eq!(Config::default().strip_prefix("/events"), Some("/events"));
    }
}
