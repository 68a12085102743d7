//! Connections bound to their token's `exp`: `tokenExpiring {expiresAt}` some seconds before
//! it, `refreshToken(newToken, cb)` to move it, and at it a Socket.IO disconnect (after an
//! `error {code: "ACCESS_DENIED", message: "Token expired"}`) or the end of an SSE stream
//! (`event: token-expired`).
//!
//! Every bound connection has one entry in one ordered map ([`Deadlines`]) that one task
//! checks four times a second: no timer per connection. An entry's key is also kept on its
//! connection, so a refresh or a disconnect removes it (a connection holds one entry at a
//! time, however often it refreshes).

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::limits;
use super::{reply, Chat, ChatError, ErrorCode};
use crate::hub::deadlines::{DeadlineKey, Deadlines};
use crate::socketio::{AckSender, NamespaceBuilder, Payload, Socket};
use crate::sse::{SseClient, SseEvent};

/// How often due deadlines are looked for (the precision of `tokenExpiring` and expiry).
const TICK: Duration = Duration::from_millis(250);

/// What happens when an entry comes due.
enum Due {
    /// Send the socket `tokenExpiring`, then schedule its expiry.
    Warn(Weak<Socket>),
    /// Disconnect the socket.
    ExpireSocket(Weak<Socket>),
    /// End the SSE stream.
    ExpireSse(Weak<SseClient>),
}

struct Entry {
    due: Due,
    /// The `exp` (Unix seconds) the entry was scheduled for.
    exp: u64,
}

/// The deadlines of every bound connection.
pub(crate) struct TokenExpiry {
    deadlines: Mutex<Deadlines<Entry>>,
    enabled: bool,
    warning: Duration,
    leeway: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TokenExpiry {
    /// Off when `allow_expired_connections` is set.
    pub(crate) fn new(config: &crate::config::Config) -> Self {
        TokenExpiry {
            deadlines: Mutex::new(Deadlines::default()),
            enabled: !config.allow_expired_connections,
            warning: config.token_expiry_warning,
            leeway: config.jwt_leeway.as_secs(),
        }
    }

    /// When a credential with this `exp` stops being accepted: the first whole second past
    /// `exp` plus the leeway (a token is valid through its `exp` second, as at connect).
    fn deadline_ms(&self, exp: u64) -> u64 {
        exp.saturating_add(self.leeway)
            .saturating_add(1)
            .saturating_mul(1000)
    }

    /// When to warn: the configured time before the deadline, but at most half the time that
    /// is left, so a short-lived token is not asked to refresh at once (and again, and again).
    fn warn_at_ms(&self, exp: u64, now: u64) -> u64 {
        let deadline = self.deadline_ms(exp);
        let left = deadline.saturating_sub(now);
        let warning = (self.warning.as_millis() as u64).min(left / 2);
        deadline - warning
    }

    /// Binds a socket to its credential's expiry (at connect, and after a refresh).
    pub(crate) fn bind_socket(&self, socket: &Arc<Socket>) {
        if !self.enabled {
            return;
        }
        let exp = socket.expires_at();
        let mut slot = socket.expiry_key();
        let mut deadlines = self.deadlines.lock();
        if let Some(old) = slot.take() {
            deadlines.remove(old);
        }
        let Some(exp) = exp else {
            return;
        };
        let weak = Arc::downgrade(socket);
        let key = if self.warning.is_zero() {
            let entry = Entry {
                due: Due::ExpireSocket(weak),
                exp,
            };
            deadlines.insert(self.deadline_ms(exp), entry)
        } else {
            let entry = Entry {
                due: Due::Warn(weak),
                exp,
            };
            deadlines.insert(self.warn_at_ms(exp, now_ms()), entry)
        };
        *slot = Some(key);
    }

    /// Forgets a socket that disconnected.
    pub(crate) fn unbind_socket(&self, socket: &Socket) {
        let key = socket.expiry_key().take();
        if let Some(key) = key {
            self.deadlines.lock().remove(key);
        }
    }

    /// Ends an SSE stream at its credential's expiry; the key unbinds it when it ends first.
    pub(crate) fn bind_sse(
        &self,
        client: &Arc<SseClient>,
        exp: Option<u64>,
    ) -> Option<DeadlineKey> {
        let exp = exp.filter(|_| self.enabled)?;
        let entry = Entry {
            due: Due::ExpireSse(Arc::downgrade(client)),
            exp,
        };
        Some(self.deadlines.lock().insert(self.deadline_ms(exp), entry))
    }

    /// Forgets an SSE stream that ended.
    pub(crate) fn unbind(&self, key: DeadlineKey) {
        self.deadlines.lock().remove(key);
    }

    /// Acts on the deadlines as they come due, until the chat is gone.
    pub(crate) async fn run(chat: Weak<Chat>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(chat) = chat.upgrade() else {
                return;
            };
            let due = chat.expiry.deadlines.lock().pop_due(now_ms());
            for (key, entry) in due {
                chat.expiry.fire(&chat, key, entry);
            }
        }
    }

    fn fire(&self, chat: &Chat, key: DeadlineKey, entry: Entry) {
        match entry.due {
            Due::ExpireSse(client) => {
                if let Some(client) = client.upgrade() {
                    client.send(&SseEvent::new(
                        "token-expired",
                        None,
                        &json!({ "message": "Token expired" }),
                    ));
                    client.close();
                    chat.metrics().disconnects.inc("token_expired");
                }
            }
            Due::Warn(socket) => {
                let Some(socket) = socket.upgrade() else {
                    return;
                };
                {
                    let Some(mut slot) = still_scheduled(&socket, key, entry.exp) else {
                        return;
                    };
                    let expire = Entry {
                        due: Due::ExpireSocket(Arc::downgrade(&socket)),
                        exp: entry.exp,
                    };
                    let next = self
                        .deadlines
                        .lock()
                        .insert(self.deadline_ms(entry.exp), expire);
                    *slot = Some(next);
                }
                let _ = socket.emit(
                    "tokenExpiring",
                    &json!({ "expiresAt": entry.exp.saturating_mul(1000) }),
                );
            }
            Due::ExpireSocket(socket) => {
                let Some(socket) = socket.upgrade() else {
                    return;
                };
                {
                    let Some(mut slot) = still_scheduled(&socket, key, entry.exp) else {
                        return;
                    };
                    *slot = None;
                }
                let _ = socket.emit(
                    "error",
                    &ChatError::new(ErrorCode::AccessDenied, "Token expired"),
                );
                socket.namespace().metrics.disconnects.inc("token_expired");
                socket.disconnect();
            }
        }
    }
}

/// Registers `refreshToken(newToken, cb)`.
pub(super) fn register(ns: NamespaceBuilder, chat: Arc<Chat>) -> NamespaceBuilder {
    ns.on(
        "refreshToken",
        move |socket: Arc<Socket>, payload: Payload, ack: Option<AckSender>| {
            let chat = chat.clone();
            async move {
                let outcome = refresh_token(&chat, &socket, &payload).await;
                reply(&socket, ack, outcome);
            }
        },
    )
}

/// Verifies the new token; when it is valid and for the same user, the connection's expiry
/// moves to its `exp`. Answers `{expiresAt}` (Unix ms; `null` for a token without `exp`).
async fn refresh_token(
    chat: &Chat,
    socket: &Arc<Socket>,
    payload: &Payload,
) -> Result<Option<Value>, ChatError> {
    super::handlers::rate_limit(chat, socket)?;
    let Some(user) = socket.user().cloned() else {
        return Err(ChatError::new(ErrorCode::AccessDenied, "Not authenticated"));
    };
    let token = match payload.args.first() {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Object(o)) => match o.get("token") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    };
    if token.len() > limits::MAX_TOKEN_BYTES {
        return Err(invalid());
    }
    if chat.hooks.authenticate.is_some() || !chat.jwt.is_configured() {
        return Err(ChatError::new(
            ErrorCode::AccessDenied,
            "Token refresh is not available: the host authenticates connections",
        ));
    }
    let fresh = chat
        .jwt
        .verify(&token)
        .await
        .map_err(|e| ChatError::new(ErrorCode::AccessDenied, e.to_string()))?;
    if fresh.id != user.id {
        return Err(ChatError::new(
            ErrorCode::AccessDenied,
            "Token is for another user",
        ));
    }
    socket.set_expires_at(fresh.expires_at);
    chat.expiry.bind_socket(socket);
    let expires_at = fresh.expires_at.map(|e| e.saturating_mul(1000));
    Ok(Some(json!({ "expiresAt": expires_at })))
}

fn invalid() -> ChatError {
    ChatError::new(
        ErrorCode::InvalidMessage,
        "refreshToken expects the new token (a string)",
    )
}

/// The socket's expiry key, locked, when `key` is still its scheduled deadline for a token
/// ending at `exp`; `None` when a refresh or a disconnect moved or removed it meanwhile.
fn still_scheduled(
    socket: &Socket,
    key: DeadlineKey,
    exp: u64,
) -> Option<parking_lot::MutexGuard<'_, Option<DeadlineKey>>> {
    let slot = socket.expiry_key();
    (*slot == Some(key) && socket.expires_at() == Some(exp)).then_some(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_warning_comes_at_most_half_the_remaining_lifetime_early() {
        let e = TokenExpiry::new(&Config::default());
        let exp = 1_000_000;
        // The deadline is the first second past `exp`.
        assert_eq!(e.deadline_ms(exp), 1_000_001_000);
        // An hour-long token: 30 s before the deadline.
        let issued = (exp - 3600) * 1000;
        assert_eq!(e.warn_at_ms(exp, issued), 1_000_001_000 - 30_000);
        // A 3 s token (4 s to the deadline): 2 s before, not at once.
        assert_eq!(e.warn_at_ms(exp, (exp - 3) * 1000), 1_000_001_000 - 2_000);
        // With leeway, the deadline moves by it.
        let lenient = TokenExpiry::new(&Config::default().jwt_leeway(Duration::from_secs(5)));
        assert_eq!(lenient.deadline_ms(exp), 1_000_006_000);
    }
}
