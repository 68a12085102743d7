//! The C functions that complete a pending request: accept, refuse, answer, fail.

use super::*;

/// Accepts a connecting client as the user described by `user_json`:
/// `{"id": "alice", "username"?: "Alice", "rooms"?: ["team-*"]}` (`username` defaults to `id`;
/// `rooms`, when present, limits the rooms the user may join as a token's claim does).
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down; `SB_INVALID_JSON` (the request stays pending) for a malformed user.
///
/// Ownership: `user_json` is borrowed for the call. Thread-safety: callable from any thread,
/// also from inside the callback that received the request.
#[no_mangle]
pub unsafe extern "C" fn sb_auth_request_accept(
    request: sb_request_id,
    user_json: *const c_char,
) -> sb_result {
    ffi! {
        let user = parse_user(args::json(user_json, "user_json")?)?;
        if let Pending::Auth(tx) = take(request, Kind::Auth)? {
            let _ = tx.send(Ok(user));
        }
        Ok(())
    }
}

/// Refuses a connecting client: it gets a `connect_error` whose `message` is `message`.
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down. Ownership: `message` is borrowed for the call. Thread-safety: callable
/// from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_auth_request_refuse(
    request: sb_request_id,
    message: *const c_char,
) -> sb_result {
    ffi! {
        let message = args::name(message, "message")?.to_owned();
        if let Pending::Auth(tx) = take(request, Kind::Auth)? {
            let _ = tx.send(Err(message));
        }
        Ok(())
    }
}

/// Answers a room-access request: `allowed` true lets the user join, false answers the
/// client `ACCESS_DENIED`.
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down. Thread-safety: callable from any thread.
#[no_mangle]
pub extern "C" fn sb_room_request_answer(request: sb_request_id, allowed: bool) -> sb_result {
    ffi! {
        if let Pending::RoomAccess(tx) = take(request, Kind::RoomAccess)? {
            let _ = tx.send(Ok(allowed));
        }
        Ok(())
    }
}

/// Fails a room-access request (the check itself failed): the client's `joinRoom` gets
/// `INTERNAL` "Internal error"; `message` is logged (see `sb_set_log_callback`), never sent.
/// To send the client a code and message of your own, use `sb_request_fail_with_code`.
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down. Ownership: `message` is borrowed for the call. Thread-safety: callable
/// from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_room_request_fail(
    request: sb_request_id,
    message: *const c_char,
) -> sb_result {
    ffi! {
        let message = args::name(message, "message")?.to_owned();
        if let Pending::RoomAccess(tx) = take(request, Kind::RoomAccess)? {
            let _ = tx.send(Err(HookError::failed(message)));
        }
        Ok(())
    }
}

/// Confirms that a message was stored: the engine keeps it in history and delivers it.
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down. Thread-safety: callable from any thread.
#[no_mangle]
pub extern "C" fn sb_store_request_done(request: sb_request_id) -> sb_result {
    ffi! {
        if let Pending::Store(tx) = take(request, Kind::Store)? {
            let _ = tx.send(Ok(()));
        }
        Ok(())
    }
}

/// Reports that a message could not be stored: nobody receives it and the sender's ack is
/// `INTERNAL` "Internal error"; `message` is logged, never sent (see
/// `sb_request_fail_with_code` for a code and message the client sees).
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down. Ownership: `message` is borrowed for the call. Thread-safety: callable
/// from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_store_request_fail(
    request: sb_request_id,
    message: *const c_char,
) -> sb_result {
    ffi! {
        let message = args::name(message, "message")?.to_owned();
        if let Pending::Store(tx) = take(request, Kind::Store)? {
            let _ = tx.send(Err(HookError::failed(message)));
        }
        Ok(())
    }
}

/// Answers an app event: the client's callback gets `(null, result)`, where `result_json` is
/// any JSON text (`"null"` for none).
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired (after
/// `host_callback_timeout` the client got an `INTERNAL` timeout instead) or its engine shut
/// down; `SB_INVALID_JSON` (the request stays pending) for malformed JSON. Ownership:
/// `result_json` is borrowed for the call. Thread-safety: callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_app_event_ack(
    request: sb_request_id,
    result_json: *const c_char,
) -> sb_result {
    ffi! {
        let value = args::json(result_json, "result_json")?;
        if let Pending::AppEvent(tx) = take(request, Kind::AppEvent)? {
            let _ = tx.send(Ok(value));
        }
        Ok(())
    }
}

/// Fails an app event: the client's callback gets `({code: "INTERNAL", message: "Internal
/// error"})`; `message` is logged, never sent (see `sb_request_fail_with_code`).
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down. Ownership: `message` is borrowed for the call. Thread-safety: callable
/// from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_app_event_fail(
    request: sb_request_id,
    message: *const c_char,
) -> sb_result {
    ffi! {
        let message = args::name(message, "message")?.to_owned();
        if let Pending::AppEvent(tx) = take(request, Kind::AppEvent)? {
            let _ = tx.send(Err(HookError::failed(message)));
        }
        Ok(())
    }
}

/// Fails a room-access, message-store or app-event request with an error the client sees
/// as it is: `{code, message}` (`code` is `[A-Z][A-Z0-9_]{0,63}`, e.g. `"QUOTA_EXCEEDED"`;
/// `message` at most 1024 characters, longer ones cut). An invalid `code` returns
/// `SB_INVALID_ARGUMENT` and the request stays pending.
///
/// Returns `SB_REQUEST_NOT_PENDING` when the request was already completed, expired or its
/// engine shut down; `SB_WRONG_REQUEST_KIND` for an authentication request (refuse those
/// with `sb_auth_request_refuse`). Ownership: the strings are borrowed for the call.
/// Thread-safety: callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn sb_request_fail_with_code(
    request: sb_request_id,
    code: *const c_char,
    message: *const c_char,
) -> sb_result {
    ffi! {
        let code = args::name(code, "code")?.to_owned();
        let message = args::text(message, "message")?.to_owned();
        if !switchboard::socketio::host_error::valid_code(&code) {
            return Err(Error::new(
                sb_result::SB_INVALID_ARGUMENT,
                format!("`code` {code:?} is not [A-Z][A-Z0-9_]{{0,63}}; the request stays pending"),
            ));
        }
        let error = HookError::client(code, message);
        let pending = {
            let mut requests = REQUESTS.lock();
            match requests.remove(&request) {
                Some(entry) if matches!(entry.pending, Pending::Auth(_)) => {
                    requests.insert(request, entry);
                    return Err(Error::new(
                        sb_result::SB_WRONG_REQUEST_KIND,
                        format!("request {request} is {}; it stays pending", Kind::Auth.describe()),
                    ));
                }
                Some(entry) => entry.pending,
                None => {
                    return Err(Error::new(
                        sb_result::SB_REQUEST_NOT_PENDING,
                        format!("request {request} is not pending: it was already completed, it expired, or its engine shut down"),
                    ))
                }
            }
        };
        match pending {
            Pending::RoomAccess(tx) => drop(tx.send(Err(error))),
            Pending::Store(tx) => drop(tx.send(Err(error))),
            Pending::AppEvent(tx) => drop(tx.send(Err(error))),
            Pending::Auth(_) => {}
        }
        Ok(())
    }
}

/// The user a host accepted a client as (`sb_auth_request_accept`).
fn parse_user(value: Value) -> Result<User, Error> {
    let bad = |why: &str| {
        Error::new(
            sb_result::SB_INVALID_JSON,
            format!("`user_json` {why}; expected {{\"id\": \"...\", \"username\"?: \"...\", \"rooms\"?: [\"...\"]}}"),
        )
    };
    let Value::Object(obj) = value else {
        return Err(bad("is not an object"));
    };
    let id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("has no non-empty `id`")),
    };
    let username = match obj.get("username") {
        None | Some(Value::Null) => id.clone(),
        Some(Value::String(s)) if s.is_empty() => id.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("has a `username` that is not a string")),
    };
    let rooms = match obj.get("rooms") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| bad("has `rooms` that are not all strings"))?,
        ),
        Some(_) => return Err(bad("has `rooms` that is not an array")),
    };
    Ok(User {
        id,
        username,
        rooms,
        // The host decides who the user is; it is asked again on every recovery.
        expires_at: None,
        claims: Some(switchboard::Claims::from_map(&obj)),
    })
}
