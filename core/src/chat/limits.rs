//! Per-connection rate limiting and the validation rules of the contract.

use std::time::{Duration, Instant};

use super::{ChatError, ErrorCode};

/// Longest token `refreshToken` verifies (a request head's default size): a larger one is
/// refused before any decoding.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 128;

/// Rooms with this prefix are Yjs documents (`doc:<name>`): the room-access hook is asked
/// about `doc:<name>` when a client opens the document `<name>`. Chat clients (Socket.IO,
/// SSE, the server API) cannot use such rooms, the way `user:` is kept for personal rooms,
/// so a hook that sees `doc:x` knows it decides on the document `x`, never on a chat room
/// that merely has that name.
pub const DOCUMENT_ROOM_PREFIX: &str = "doc:";

/// A token bucket, plus the start of the current streak of refusals.
#[derive(Clone)]
pub struct RateLimiter {
    tokens: f64,
    last: Instant,
    flood_start: Option<Instant>,
    last_refusal: Option<Instant>,
}

/// What the limiter decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over the limit: refuse with `RATE_LIMITED`.
    Limited,
    /// Over the limit for longer than the flood allowance: disconnect.
    Flooding,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(burst: u32) -> Self {
        RateLimiter {
            tokens: f64::from(burst),
            last: Instant::now(),
            flood_start: None,
            last_refusal: None,
        }
    }

    /// Takes a token at `now`.
    pub fn check(
        &mut self,
        now: Instant,
        per_second: u32,
        burst: u32,
        flood_after: Duration,
    ) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(per_second)).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allowed;
        }
        // A streak of refusals ends when the client stays quiet for a second.
        let streak_broken = self
            .last_refusal
            .is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(1));
        if streak_broken {
            self.flood_start = Some(now);
        }
        self.last_refusal = Some(now);
        match self.flood_start {
            Some(start) if now.saturating_duration_since(start) >= flood_after => Verdict::Flooding,
            _ => Verdict::Limited,
        }
    }
}

/// Checks a room id: a string of 1–128 characters without control characters.
pub fn room_id(value: Option<&serde_json::Value>) -> Result<&str, ChatError> {
    let invalid = |why: &str| ChatError::new(ErrorCode::InvalidRoom, why);
    let Some(room) = value.and_then(serde_json::Value::as_str) else {
        return Err(invalid("roomId must be a string"));
    };
    let chars = room.chars().count();
    if chars == 0 || chars > MAX_ROOM_CHARS {
        return Err(invalid("roomId must be 1 to 128 characters"));
    }
    if room.chars().any(char::is_control) {
        return Err(invalid("roomId must not contain control characters"));
    }
    if room.starts_with(DOCUMENT_ROOM_PREFIX) {
        return Err(invalid(
            "roomId must not start with doc: (reserved for collaborative documents)",
        ));
    }
    Ok(room)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bucket_allows_burst_then_limits_then_floods() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(3);
        let flood = Duration::from_secs(5);
        for _ in 0..3 {
            assert_eq!(r.check(t0, 1, 3, flood), Verdict::Allowed);
        }
        assert_eq!(r.check(t0, 1, 3, flood), Verdict::Limited);
        // Refill: one token per second.
        assert_eq!(
            r.check(t0 + Duration::from_millis(1000), 1, 3, flood),
            Verdict::Allowed
        );
        // A sustained flood: refusals every 100 ms for over 5 s.
        let mut verdict = Verdict::Allowed;
        for i in 1..=60 {
            let v = r.check(t0 + Duration::from_millis(1000 + i * 100), 1, 3, flood);
            if v == Verdict::Flooding {
                verdict = v;
                break;
            }
        }
        assert_eq!(verdict, Verdict::Flooding);
    }

    #[test]
    fn room_ids() {
        assert_eq!(room_id(Some(&json!("lobby"))), Ok("lobby"));
        assert!(room_id(Some(&json!(""))).is_err());
        assert!(room_id(Some(&json!("a\nb"))).is_err());
        assert!(room_id(Some(&json!("x".repeat(129)))).is_err());
        assert!(room_id(Some(&json!("é".repeat(128)))).is_ok());
        assert!(room_id(Some(&json!(5))).is_err());
        assert!(room_id(None).is_err());
        // Reserved for Yjs documents: a chat room cannot pass for one.
        let doc = room_id(Some(&json!("doc:x"))).unwrap_err();
        assert_eq!(doc.code, ErrorCode::InvalidRoom);
        assert!(room_id(Some(&json!("docs:x"))).is_ok());
        assert!(room_id(Some(&json!("my-doc:x"))).is_ok());
    }
}
