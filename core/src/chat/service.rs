//! The chat's HTTP side: the SSE stream at `/events` and the server API under `/api/`.
//! Both act on the same hub as Socket.IO clients: a message published through the API is
//! stored and delivered like one sent with `sendMessage`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{is_personal, limits, personal_room, Chat, ChatError, ErrorCode};
use crate::auth::{bearer_token, User};
use crate::helpers::percent::query_param;
use crate::sse::{SseEvent, SseStream};
use crate::store::ChatMessage;
use crate::transport::http::{HttpReply, HttpService, RequestHead};

/// Largest API request body.
const MAX_API_BODY: usize = 64 * 1024;

fn error(status: StatusCode, code: &str, message: &str) -> HttpReply {
    HttpReply::json(
        status,
        json!({ "code": code, "message": message }).to_string(),
    )
}

fn chat_error(e: &ChatError) -> HttpReply {
    let status = match e.code {
        ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotReachable => StatusCode::NOT_FOUND,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    HttpReply::json(status, serde_json::to_string(e).unwrap_or_default())
}

fn ok(value: Value) -> HttpReply {
    HttpReply::json(StatusCode::OK, value.to_string())
}

/// Serves `/events` and `/api/`.
pub(crate) struct ChatHttp(pub Arc<Chat>);

impl HttpService for ChatHttp {
    fn serve(&self, head: &RequestHead, body: Bytes) -> BoxFuture<'static, HttpReply> {
        let chat = self.0.clone();
        let head = head.clone();
        Box::pin(async move {
            let path = head.uri.path();
            if path == "/events" || path == "/events/" {
                return match head.method {
                    Method::GET => events(&chat, &head).await,
                    _ => error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "METHOD_NOT_ALLOWED",
                        "Use GET",
                    ),
                };
            }
            api(&chat, &head, body).await
        })
    }

    fn max_body(&self) -> usize {
        MAX_API_BODY
    }

    fn shutdown(&self) {
        self.0.sse.close_all();
    }
}

/// `GET /events?rooms=a,b` with `Authorization: Bearer` or `?token=`.
async fn events(chat: &Arc<Chat>, head: &RequestHead) -> HttpReply {
    let query = head.uri.query().unwrap_or("");
    let token = crate::helpers::token::find(&head.headers, query, None);
    let user = match token {
        None => Err(crate::auth::AuthError::Required),
        Some(t) => chat.jwt.verify(&t).await,
    };
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            chat.metrics().refusals.inc(e.reason_label());
            return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", &e.to_string());
        }
    };
    let rooms = match stream_rooms(chat, &user, query).await {
        Ok(rooms) => rooms,
        Err(reply) => return reply,
    };
    let last_event_id = head
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_param(query, "lastEventId"));

    let client = chat.sse.connect(&user.id, &rooms);
    // Hear these rooms from every node before saying `connected`.
    chat.sse_interest(&user.id, &rooms).await;
    client.send(&SseEvent::new(
        "connected",
        None,
        &json!({ "clientId": &*client.id }),
    ));
    if let Some(last) = last_event_id.filter(|l| !l.is_empty()) {
        replay_missed(chat, &client, &rooms, &last).await;
    }
    let expiry = chat.expiry.bind_sse(&client, user.expires_at);
    let hub_chat = chat.clone();
    let hub_client = client.clone();
    let stream = SseStream::new(
        client,
        chat.config.sse_ping_interval,
        Box::new(move || {
            if let Some(key) = expiry {
                hub_chat.expiry.unbind(key);
            }
            hub_chat.sse.disconnect(&hub_client, &rooms);
            drop(hub_chat.sse_interest(&hub_client.user_id, &rooms));
        }),
    );
    let mut reply = HttpReply::stream(StatusCode::OK, Box::pin(stream));
    reply.headers = vec![
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            http::HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ),
    ];
    reply
}

/// The distinct rooms of `?rooms=a,b`, each checked; more than a connection may join is a
/// 400 `TOO_MANY_ROOMS` before any access check (each may ask the host).
async fn stream_rooms(chat: &Chat, user: &User, query: &str) -> Result<Vec<Arc<str>>, HttpReply> {
    let max = chat.config.max_rooms_per_connection;
    let list = query_param(query, "rooms").unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut rooms: Vec<Arc<str>> = Vec::new();
    for room in list.split(',') {
        let room = room.trim();
        if room.is_empty() || !seen.insert(room) {
            continue;
        }
        if rooms.len() == max {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "TOO_MANY_ROOMS",
                &format!("At most {max} rooms per stream"),
            ));
        }
        limits::room_id(Some(&Value::String(room.to_owned()))).map_err(|e| chat_error(&e))?;
        rooms.push(room.into());
    }
    for room in &rooms {
        super::check_room_access(&chat.config, chat.hooks.room_access.as_deref(), user, room)
            .await
            .map_err(|e| chat_error(&e))?;
    }
    Ok(rooms)
}

/// Sends what a resuming client missed after `last`, or `reset` when history no longer
/// reaches back that far.
async fn replay_missed(
    chat: &Chat,
    client: &crate::sse::SseClient,
    rooms: &[Arc<str>],
    last: &str,
) {
    let mut missed: Vec<Arc<ChatMessage>> = Vec::new();
    for room in rooms {
        let Ok(history) = chat
            .history_query(room, None, chat.config.history_limit)
            .await
        else {
            continue;
        };
        let full = history.len() >= chat.config.history_limit;
        if full && history.first().is_some_and(|m| m.id.as_str() > last) {
            client.send(&SseEvent::new(
                "reset",
                None,
                &json!({ "roomId": &**room, "reason": "history no longer reaches the last event" }),
            ));
            continue;
        }
        missed.extend(history.into_iter().filter(|m| m.id.as_str() > last));
    }
    missed.sort_by(|a, b| a.id.cmp(&b.id));
    for m in missed {
        // A full queue closed the stream (the client resumes again from what it got): stop
        // encoding, or one request could cost up to 100 rooms × the history limit.
        if !client.send(&SseEvent::new("message", Some(&m.id), &*m)) {
            break;
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishBody {
    text: Value,
    user_id: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct NotifyBody {
    event: Option<String>,
    data: Option<Value>,
}

/// The server API: `Authorization: Bearer <api key>`; off without a configured key.
async fn api(chat: &Arc<Chat>, head: &RequestHead, body: Bytes) -> HttpReply {
    let Some(key) = chat.config.api_key.as_deref() else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The server API is off (no API key configured)",
        );
    };
    let presented = head
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match presented {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "API key required (Authorization: Bearer <key>)",
            )
        }
        Some(p) if !api_key_matches(p, key) => {
            return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Invalid API key")
        }
        Some(_) => {}
    }
    let segments: Vec<String> = head
        .uri
        .path()
        .trim_start_matches("/api/")
        .trim_end_matches('/')
        .split('/')
        .map(crate::helpers::percent::path_segment_lossy)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let json_body = || -> Result<Value, HttpReply> {
        serde_json::from_slice::<Value>(&body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "INVALID_MESSAGE",
                &format!("Body is not valid JSON: {e}"),
            )
        })
    };
    match (&head.method, segments.as_slice()) {
        (&Method::GET, ["rooms"]) => {
            let rooms: Vec<Value> = chat
                .presence
                .lock()
                .room_sizes()
                .into_iter()
                .map(|(room, n)| json!({ "roomId": &*room, "members": n }))
                .collect();
            ok(json!({ "rooms": rooms }))
        }
        (&Method::GET, ["rooms", room, "presence"]) => {
            let members = chat.members(room).await;
            ok(json!({ "roomId": room, "members": members }))
        }
        (&Method::POST, ["rooms", room, "messages"]) => {
            let body = match json_body().and_then(|v| {
                serde_json::from_value::<PublishBody>(v).map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_MESSAGE",
                        &format!("Expected {{text, userId?, username?}}: {e}"),
                    )
                })
            }) {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            let id = body.user_id.unwrap_or_else(|| "api".to_owned());
            let user = User {
                username: body.username.unwrap_or_else(|| id.clone()),
                id,
                rooms: None,
                expires_at: None,
                claims: None,
            };
            match chat.publish(room, &user, body.text.as_str()).await {
                Ok(m) => ok(json!({ "id": m.id, "timestamp": m.timestamp })),
                Err(e) => chat_error(&e),
            }
        }
        (&Method::POST, ["users", user, "notify"]) => {
            let body = match json_body().and_then(|v| {
                serde_json::from_value::<NotifyBody>(v).map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_MESSAGE",
                        &format!("Expected {{event?, data}}: {e}"),
                    )
                })
            }) {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            let event = body.event.unwrap_or_else(|| "notification".to_owned());
            if event.is_empty()
                || event.chars().count() > 128
                || event.chars().any(char::is_control)
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_MESSAGE",
                    "event must be 1 to 128 characters without control characters",
                );
            }
            let delivered = chat.notify_user(user, &event, &body.data.unwrap_or(Value::Null));
            ok(json!({ "delivered": delivered }))
        }
        (&Method::POST, ["users", user, "disconnect"]) => {
            let n = chat.disconnect_user(user);
            ok(json!({ "disconnected": n }))
        }
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "No such API endpoint"),
    }
}

/// Whether the presented API key is the configured one, in time that depends on neither key's
/// content nor on their lengths: comparing lengths first (as a plain `==` or a length check
/// does) tells an attacker timing responses how long the key is. Both sides are hashed to 32
/// bytes, then compared with `subtle`'s constant-time equality (which the optimiser cannot
/// turn into an early exit).
fn api_key_matches(presented: &str, key: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let key: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    presented.ct_eq(&key).into()
}

impl Chat {
    /// Stores and delivers a message to `room` (Socket.IO members and SSE clients) as
    /// `user`; what `sendMessage` and the API's publish share.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        room: &str,
        user: &User,
        text: Option<&str>,
    ) -> Result<Arc<ChatMessage>, ChatError> {
        limits::room_id(Some(&Value::String(room.to_owned())))?;
        if is_personal(room) {
            return Err(ChatError::new(
                ErrorCode::InvalidRoom,
                "Messages go to rooms, not personal rooms",
            ));
        }
        let text =
            text.ok_or_else(|| ChatError::new(ErrorCode::InvalidMessage, "text must be a string"))?;
        if text.trim().is_empty() {
            return Err(ChatError::new(
                ErrorCode::InvalidMessage,
                "text must not be empty",
            ));
        }
        let max = self.config.max_message_chars;
        if text.chars().count() > max {
            return Err(ChatError::new(
                ErrorCode::InvalidMessage,
                format!("text must be at most {max} characters"),
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (id, ms) = self.ids.next(now);
        let message = Arc::new(ChatMessage {
            id,
            room_id: room.to_owned(),
            text: text.to_owned(),
            user_id: user.id.clone(),
            username: user.username.clone(),
            timestamp: crate::store::iso8601_millis(ms),
        });
        if let Some(hook) = &self.hooks.message_store {
            match tokio::time::timeout(
                self.config.host_callback_timeout,
                hook.store_from(&message, user),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(ChatError::from_hook(
                        &e,
                        "storeMessage",
                        &format!("user:{}", user.id),
                    ))
                }
                Err(_) => {
                    return Err(ChatError::new(
                        ErrorCode::Internal,
                        "Message store timed out",
                    ))
                }
            }
        }
        // In a cluster the shared history's append is sent before the broadcast (one Redis
        // connection keeps them in order, so any node that hears the message finds it in
        // history) and completes in the background: it cannot refuse the message (this
        // node's own history takes it when Redis fails), and waiting for the round trip
        // would hold the sender's next message (a socket's requests run in order).
        let shared = self.begin_shared_history_append(&message).await;
        if shared.is_none() {
            if let Err(e) = self.history.append(message.clone()).await {
                tracing::warn!(error = %e, "history append failed");
                return Err(ChatError::new(
                    ErrorCode::Internal,
                    "Message was not stored",
                ));
            }
        }
        if let Some(ns) = self.namespace() {
            ns.to(room).emit("message", &*message);
            ns.metrics.messages.inc();
        }
        self.sse_to_room(
            room,
            &SseEvent::new("message", Some(&message.id), &*message),
        );
        if let Some(shared) = shared {
            let (chat, message) = (self.clone(), message.clone());
            tokio::spawn(async move { chat.finish_shared_history_append(shared, &message).await });
        }
        Ok(message)
    }

    /// Sends `event` to every connection of a user (Socket.IO and SSE).
    pub(crate) fn notify_user(&self, user_id: &str, event: &str, data: &Value) -> usize {
        let sockets = self
            .namespace()
            .map_or(0, |ns| ns.to(&personal_room(user_id)).emit(event, data));
        sockets + self.sse_to_user(user_id, &SseEvent::new(event, None, data))
    }

    /// Disconnects every connection of a user (every transport registered with the engine:
    /// Socket.IO, SSE, Yjs), on every node; returns how many were on this one.
    pub(crate) fn disconnect_user(&self, user_id: &str) -> usize {
        self.disconnect_user_elsewhere(user_id);
        self.disconnect_local_user(user_id)
    }

    /// Disconnects the user's connections on this node: what the other nodes' "disconnect
    /// user" message does here too, through the same index.
    pub(crate) fn disconnect_local_user(&self, user_id: &str) -> usize {
        self.users.disconnect_user(user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::api_key_matches;
    use std::time::{Duration, Instant};

    #[test]
    fn api_keys_compare_by_value() {
        let key = "k3y-0123456789abcdef";
        assert!(api_key_matches(key, key));
        assert!(!api_key_matches("k3y-0123456789abcdeF", key));
        assert!(!api_key_matches("k3y-0123456789abcde", key));
        assert!(!api_key_matches("k3y-0123456789abcdef0", key));
        assert!(!api_key_matches("", key));
    }

    /// The fastest of many runs: what the comparison itself costs, without scheduling noise.
    fn fastest(presented: &str, key: &str) -> Duration {
        (0..300)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(api_key_matches(
                    std::hint::black_box(presented),
                    std::hint::black_box(key),
                ));
                start.elapsed()
            })
            .min()
            .unwrap_or_default()
    }

    #[test]
    fn the_keys_length_does_not_show_in_the_time() {
        // A guess as long as the key (wrong in its last byte) and one a byte shorter cost the
        // same. A length check first answers the short guess at once (tens of times faster
        // for a key this long), which tells an attacker the key's length.
        let key = "k".repeat(8192);
        let same_length = format!("{}x", "k".repeat(8191));
        let shorter = "k".repeat(8191);
        let (a, b) = (fastest(&same_length, &key), fastest(&shorter, &key));
        let ratio = a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        assert!(
            (0.33..3.0).contains(&ratio),
            "same length {a:?} vs shorter {b:?}: ratio {ratio:.2}"
        );
    }
}
