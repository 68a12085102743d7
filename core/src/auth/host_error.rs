//! How a host callback's failure reaches a client. A host's own error text (an exception's
//! message, a database error) may hold internals — SQL, paths, other users' data — so it is
//! logged and the client sees only `INTERNAL` "Internal error", unless the host chose a code
//! and message for the client ([`HookError::client`], Node's `SwitchboardError`).

use serde_json::{json, Value};

/// The longest client error code a host may choose.
pub const MAX_CODE_LEN: usize = 64;
/// The longest client error message a host may choose, in characters; longer ones are cut.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// What a client sees for a host failure it is not told about.
pub const INTERNAL_MESSAGE: &str = "Internal error";

/// A failed host hook (authentication, room access, storage, an app event handler).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The host failed (threw, rejected, reported an error). The detail is logged at error
    /// level; the client gets `{code: "INTERNAL", message: "Internal error"}`.
    #[error("{0}")]
    Failed(String),
    /// The host refused with a code and message meant for the client, which it gets as
    /// they are. Build it with [`HookError::client`], which checks the code.
    #[error("{code}: {message}")]
    Client {
        /// `[A-Z0-9_]{1,64}`, starting with a letter.
        code: String,
        /// For people.
        message: String,
    },
    /// The engine gave up waiting (`host_callback_timeout`) or could not ask the host (it is
    /// shutting down): an engine message, which the client sees with `INTERNAL`.
    #[error("{0}")]
    Engine(String),
}

/// Whether `code` may be sent to clients: `[A-Z][A-Z0-9_]{0,63}`.
pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

impl HookError {
    /// A failure whose detail is for the logs only.
    pub fn failed(detail: impl Into<String>) -> Self {
        HookError::Failed(detail.into())
    }

    /// A refusal the client sees with this code and message. An invalid code (see
    /// [`valid_code`]) makes it a plain [`HookError::Failed`], so a host's mistake never
    /// puts arbitrary text in the `code` clients switch on.
    pub fn client(code: impl Into<String>, message: impl Into<String>) -> Self {
        let (code, message) = (code.into(), message.into());
        if !valid_code(&code) {
            let shown: String = code.chars().take(80).collect();
            return HookError::Failed(format!(
                "invalid client error code {shown:?} (want [A-Z][A-Z0-9_]{{0,63}}): {message}"
            ));
        }
        let message = message.chars().take(MAX_MESSAGE_CHARS).collect();
        HookError::Client { code, message }
    }

    /// The `(code, message)` the client receives. A [`HookError::Failed`] is logged here at
    /// error level with `hook` (the callback or event) and `sid` (the socket, or the user
    /// where no socket is at hand), so every binding's host errors reach the host's logger
    /// the same way.
    pub fn to_client(&self, hook: &str, sid: &str) -> (String, String) {
        match self {
            HookError::Failed(detail) => {
                tracing::error!(
                    target: "switchboard::host",
                    hook,
                    sid,
                    error = %detail,
                    "host callback failed"
                );
                ("INTERNAL".into(), INTERNAL_MESSAGE.into())
            }
            HookError::Client { code, message } => (code.clone(), message.clone()),
            HookError::Engine(message) => ("INTERNAL".into(), message.clone()),
        }
    }

    /// The `{code, message}` object of an ack (see [`HookError::to_client`]).
    pub fn to_json(&self, hook: &str, sid: &str) -> Value {
        let (code, message) = self.to_client(hook, sid);
        json!({ "code": code, "message": message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_details_stay_out_of_what_clients_see() {
        let e = HookError::failed("SELECT * FROM users failed: password=hunter2");
        assert_eq!(
            e.to_client("storeMessage", "s1"),
            ("INTERNAL".into(), "Internal error".into())
        );
        let e = HookError::client("QUOTA_EXCEEDED", "Too many messages today");
        assert_eq!(
            e.to_client("sendMessage", "s1"),
            ("QUOTA_EXCEEDED".into(), "Too many messages today".into())
        );
        for bad in ["", "quota", "A B", "1ABC", &"A".repeat(65), "ÄÖ"] {
            assert!(
                matches!(HookError::client(bad, "m"), HookError::Failed(_)),
                "{bad:?}"
            );
        }
        let long = HookError::client("X", "m".repeat(5000));
        assert!(matches!(long, HookError::Client { message, .. } if message.len() == 1024));
    }
}
