//! The client requests of the contract, one function each.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::limits::{self, RateLimiter, Verdict};
use super::{emit_typing, is_personal, personal_room, reply, Chat, ChatError, ErrorCode};
use crate::auth::access::{self, AccessRefused};
use crate::auth::User;
use crate::hub::typing::Wake;
use crate::socketio::{AckSender, NamespaceBuilder, Payload, Socket};
use crate::store::ChatMessage;

/// Most messages one `getHistory` returns.
const MAX_HISTORY_LIMIT: u64 = 100;
/// Messages `getHistory` returns without a `limit`.
const DEFAULT_HISTORY_LIMIT: u64 = 50;

type Outcome = Result<Option<Value>, ChatError>;

/// Registers every contract event on the namespace.
pub(super) fn register(ns: NamespaceBuilder, chat: Arc<Chat>) -> NamespaceBuilder {
    macro_rules! route {
        ($ns:expr, $event:literal, $handler:ident) => {{
            let chat = chat.clone();
            $ns.on(
                $event,
                move |socket: Arc<Socket>, payload: Payload, ack: Option<AckSender>| {
                    let chat = chat.clone();
                    async move {
                        let Some(user) = socket.user().cloned() else {
                            return;
                        };
                        let outcome = $handler(&chat, &socket, &user, payload).await;
                        if let Some(outcome) = outcome {
                            reply(&socket, ack, outcome);
                        }
                    }
                },
            )
        }};
    }
    let ns = route!(ns, "joinRoom", join_room);
    let ns = route!(ns, "leaveRoom", leave_room);
    let ns = route!(ns, "sendMessage", send_message);
    let ns = route!(ns, "startTyping", start_typing);
    let ns = route!(ns, "stopTyping", stop_typing);
    let ns = route!(ns, "getHistory", get_history);
    let ns = super::expiry::register(ns, chat.clone());
    route!(ns, "signal", signal)
}

/// Applies the connection's rate limit; disconnects a sustained flood.
pub(super) fn rate_limit(chat: &Chat, socket: &Arc<Socket>) -> Result<(), ChatError> {
    let c = &chat.config;
    if c.rate_limit_per_second == 0 {
        return Ok(());
    }
    let verdict = {
        let mut ext = socket.extensions();
        let limiter = ext.get_or_insert_with(|| RateLimiter::new(c.rate_limit_burst));
        limiter.check(
            Instant::now(),
            c.rate_limit_per_second,
            c.rate_limit_burst,
            c.flood_disconnect_after,
        )
    };
    match verdict {
        Verdict::Allowed => Ok(()),
        Verdict::Limited => Err(ChatError::new(
            ErrorCode::RateLimited,
            "Too many requests; slow down",
        )),
        Verdict::Flooding => {
            let _ = socket.emit(
                "error",
                &ChatError::new(ErrorCode::RateLimited, "Disconnected for flooding"),
            );
            socket.namespace().metrics.disconnects.inc("rate_limited");
            socket.disconnect();
            Err(ChatError::new(
                ErrorCode::RateLimited,
                "Disconnected for flooding",
            ))
        }
    }
}

async fn may_join(chat: &Chat, user: &User, room: &str) -> Result<(), ChatError> {
    check_room_access(&chat.config, chat.hooks.room_access.as_deref(), user, room).await
}

/// The room access rules ([`crate::auth::access`]), worded for chat clients. Shared with
/// Yjs documents: opening the document `<name>` asks about the room `doc:<name>`, a prefix
/// chat rooms may not use ([`limits::DOCUMENT_ROOM_PREFIX`]).
pub(crate) async fn check_room_access(
    config: &crate::config::Config,
    hook: Option<&dyn super::RoomAccess>,
    user: &User,
    room: &str,
) -> Result<(), ChatError> {
    access::check_room_access(config, hook, user, room)
        .await
        .map_err(|refused| match refused {
            AccessRefused::Denied => {
                ChatError::new(ErrorCode::AccessDenied, format!("You may not join {room}"))
            }
            AccessRefused::Hook(e) => {
                ChatError::from_hook(&e, "authorizeRoom", &personal_room(&user.id))
            }
            AccessRefused::TimedOut => {
                ChatError::new(ErrorCode::Internal, "Room access check timed out")
            }
        })
}

async fn join_room(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Option<Outcome> {
    Some(join_room_inner(chat, socket, user, payload).await)
}

async fn join_room_inner(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Outcome {
    rate_limit(chat, socket)?;
    let room = limits::room_id(payload.args.first())?.to_owned();
    if socket.in_room(&room) {
        return Ok(None);
    }
    may_join(chat, user, &room).await?;
    if is_personal(&room) {
        return Ok(None);
    }
    let chat_rooms = socket.rooms().iter().filter(|r| !is_personal(r)).count();
    if chat_rooms >= chat.config.max_rooms_per_connection {
        return Err(ChatError::new(
            ErrorCode::AccessDenied,
            format!(
                "A connection may be in at most {} rooms",
                chat.config.max_rooms_per_connection
            ),
        ));
    }
    // One allocation of the name for the socket's list, presence and the announcement the
    // recovery log keeps: the room map's when the room exists.
    let room: Arc<str> = match socket.namespace().rooms.shared_name(&room) {
        Some(shared) => shared,
        None => room.into(),
    };
    if !socket.join_shared(room.clone()) {
        // Disconnected meanwhile, or joined by a concurrent request.
        return Ok(None);
    }
    chat.await_subscription(&room).await;
    chat.presence_join(socket, user, &room).await;
    let members = chat.members(&room).await;
    let _ = socket.emit(
        "roomMembers",
        &json!({ "roomId": &*room, "members": members }),
    );
    Ok(None)
}

async fn leave_room(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Option<Outcome> {
    Some((|| {
        let room = limits::room_id(payload.args.first())?;
        if is_personal(room) {
            return Err(ChatError::new(
                ErrorCode::AccessDenied,
                "You cannot leave your personal room",
            ));
        }
        if !socket.leave(room) {
            return Err(ChatError::new(
                ErrorCode::NotInRoom,
                format!("You are not in {room}"),
            ));
        }
        let room: Arc<str> = room.into();
        chat.stop_typing(socket, user, &room, false);
        chat.presence_leave(user, &room);
        Ok(None)
    })())
}

/// The object argument of a request, or `INVALID_MESSAGE`.
fn object_arg(payload: &Payload) -> Result<&serde_json::Map<String, Value>, ChatError> {
    payload
        .args
        .first()
        .and_then(Value::as_object)
        .ok_or_else(|| ChatError::new(ErrorCode::InvalidMessage, "Expected an object argument"))
}

fn member_room<'a>(
    socket: &Socket,
    args: &'a serde_json::Map<String, Value>,
) -> Result<&'a str, ChatError> {
    let room = limits::room_id(args.get("roomId"))?;
    if !socket.in_room(room) || is_personal(room) {
        return Err(ChatError::new(
            ErrorCode::NotInRoom,
            format!("You are not in {room}"),
        ));
    }
    Ok(room)
}

async fn send_message(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Option<Outcome> {
    Some(send_message_inner(chat, socket, user, payload).await)
}

async fn send_message_inner(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Outcome {
    rate_limit(chat, socket)?;
    let args = object_arg(&payload)?;
    let room = member_room(socket, args)?;
    let text = args.get("text").and_then(Value::as_str);
    let message = chat.publish(room, user, text).await?;
    Ok(Some(
        json!({ "id": message.id, "timestamp": message.timestamp }),
    ))
}

async fn start_typing(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Option<Outcome> {
    // Clients send this per keystroke; unlimited, each one cost a cluster round trip (and
    // once a task): it shares the connection's request budget.
    if let Err(e) = rate_limit(chat, socket) {
        return Some(Err(e));
    }
    let room: Arc<str> = match limits::room_id(payload.args.first()) {
        Ok(r) if socket.in_room(r) && !is_personal(r) => r.into(),
        Ok(r) => {
            return Some(Err(ChatError::new(
                ErrorCode::NotInRoom,
                format!("You are not in {r}"),
            )))
        }
        Err(e) => return Some(Err(e)),
    };
    let user_id: Arc<str> = user.id.as_str().into();
    let deadline = Instant::now() + chat.config.typing_timeout;
    let started = chat.typing.lock().start(&room, &user_id, deadline);
    // Typing is per user across the cluster: another node may know the user types already.
    let changed = chat
        .cluster_typing_start(&room, &user.id, started.generation, started.changed)
        .await
        .unwrap_or(started.changed);
    if changed {
        emit_typing(socket, user, &room, true);
    }
    if started.spawn_timer {
        tokio::spawn(typing_timer(
            chat.clone(),
            socket.clone(),
            user.clone(),
            room,
            user_id,
            deadline,
        ));
    }
    Some(Ok(None))
}

/// The one auto-stop timer of a (room, user) typing entry: sleeps until its deadline, and
/// again while later starts push the deadline back; ends when the typing expires (telling
/// the others) or was stopped.
async fn typing_timer(
    chat: Arc<Chat>,
    socket: Arc<Socket>,
    user: User,
    room: Arc<str>,
    user_id: Arc<str>,
    mut deadline: Instant,
) {
    loop {
        tokio::time::sleep_until(deadline.into()).await;
        let wake = chat.typing.lock().wake(&room, &user_id, Instant::now());
        match wake {
            Wake::Sleep(next) => deadline = next,
            Wake::Done => return,
            Wake::Expired { generation } => {
                let expired = chat
                    .cluster_typing_stop(&room, &user.id, Some(generation), true)
                    .await
                    .unwrap_or(true);
                if expired {
                    emit_typing(&socket, &user, &room, false);
                }
                return;
            }
        }
    }
}

async fn stop_typing(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Option<Outcome> {
    if let Err(e) = rate_limit(chat, socket) {
        return Some(Err(e));
    }
    let room: Arc<str> = match limits::room_id(payload.args.first()) {
        Ok(r) if socket.in_room(r) && !is_personal(r) => r.into(),
        Ok(r) => {
            return Some(Err(ChatError::new(
                ErrorCode::NotInRoom,
                format!("You are not in {r}"),
            )))
        }
        Err(e) => return Some(Err(e)),
    };
    chat.stop_typing(socket, user, &room, true);
    Some(Ok(None))
}

async fn get_history(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    _user: &User,
    payload: Payload,
) -> Option<Outcome> {
    Some(get_history_inner(chat, socket, payload).await)
}

async fn get_history_inner(chat: &Arc<Chat>, socket: &Arc<Socket>, payload: Payload) -> Outcome {
    // Each answer may be 100 messages of 4000 characters: the budget of the other requests.
    rate_limit(chat, socket)?;
    let args = object_arg(&payload)?;
    let room = member_room(socket, args)?;
    let invalid = |why: &str| ChatError::new(ErrorCode::InvalidMessage, why);
    let limit = match args.get("limit") {
        None | Some(Value::Null) => DEFAULT_HISTORY_LIMIT,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
            .ok_or_else(|| invalid("limit must be an integer from 1 to 100"))?,
    };
    let before = match args.get("before") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid("before must be a message id")),
    };
    let messages = chat
        .history_query(room, before, limit as usize)
        .await
        .map_err(|_| ChatError::new(ErrorCode::Internal, "History is unavailable"))?;
    let messages: Vec<&ChatMessage> = messages.iter().map(|m| &**m).collect();
    Ok(Some(json!({ "messages": messages })))
}

async fn signal(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Option<Outcome> {
    Some(signal_inner(chat, socket, user, payload).await)
}

async fn signal_inner(
    chat: &Arc<Chat>,
    socket: &Arc<Socket>,
    user: &User,
    payload: Payload,
) -> Outcome {
    rate_limit(chat, socket)?;
    let args = object_arg(&payload)?;
    let invalid = |why: &str| ChatError::new(ErrorCode::InvalidMessage, why);
    let to = args
        .get("toUserId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("toUserId must be a non-empty string"))?
        .to_owned();
    let to = to.as_str();
    let data = args.get("data").cloned().unwrap_or(Value::Null);
    let size = serde_json::to_vec(&data).map_or(usize::MAX, |v| v.len())
        + payload.attachments.iter().map(|a| a.len()).sum::<usize>();
    if size > chat.config.max_signal_bytes {
        return Err(invalid("data is larger than 64 KiB"));
    }
    let mut shares_room = false;
    for room in socket.rooms().iter().filter(|r| !is_personal(r)) {
        if chat.is_present(room, to).await {
            shares_room = true;
            break;
        }
    }
    let not_reachable =
        || ChatError::new(ErrorCode::NotReachable, format!("{to} is not reachable"));
    if !shares_room {
        return Err(not_reachable());
    }
    let event = Payload {
        args: vec![json!({ "fromUserId": user.id, "fromUsername": user.username, "data": data })],
        attachments: payload.attachments,
    };
    // Not kept for recovery: an offer or candidate from minutes ago is useless, and at up
    // to 64 KiB each, signals would push the room messages out of the log.
    let delivered = socket
        .namespace()
        .to(&personal_room(to))
        .without_recovery()
        .emit_payload("signal", &event);
    // In a cluster the target's connections may all be on other nodes: presence said it
    // is there, and the broadcast went to them.
    if delivered == 0 && !chat.in_cluster() {
        return Err(not_reachable());
    }
    Ok(None)
}

#[cfg(test)]
mod contract_tests {
    use crate::chat::{app_event_refusal, CONTRACT_EVENTS};
    use crate::socketio::NamespaceBuilder;
    use crate::{Config, Engine};

    #[test]
    fn the_contract_list_is_what_the_chat_answers() {
        let mut registered = None;
        let builder = Engine::builder(Config::default());
        let (builder, _handle) =
            crate::chat::install_with_handle(builder, Default::default()).expect("chat installs");
        let _ = builder.namespace("/", |ns: NamespaceBuilder| {
            registered = Some(
                CONTRACT_EVENTS
                    .iter()
                    .filter(|e| !ns.handles(e))
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>(),
            );
            ns
        });
        assert_eq!(
            registered,
            Some(Vec::new()),
            "contract events without a handler"
        );
        for e in CONTRACT_EVENTS {
            assert!(app_event_refusal(e).is_some());
        }
        assert!(app_event_refusal("disconnect").is_some());
        assert!(app_event_refusal("").is_some());
        assert_eq!(app_event_refusal("presence"), None);
    }

    #[test]
    #[should_panic(expected = "already has a handler")]
    fn a_second_handler_for_an_event_is_refused() {
        let _ = NamespaceBuilder::default()
            .on("ping", |_, _, _| async {})
            .on("ping", |_, _, _| async {});
    }
}
