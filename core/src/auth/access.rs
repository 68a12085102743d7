//! Room access: who may join which room. One rule for chat rooms and collaborative documents
//! (the document `<name>` is the room `doc:<name>`), so every feature asks here.

use futures_util::future::BoxFuture;

use super::host_error::HookError;
use super::User;
use crate::config::{Config, RoomPolicy};
use crate::hub::{is_personal, personal_room};

/// Decides room access instead of the token claim and the room policy.
///
/// `room` is a chat room, or `doc:<name>` when the user opens the collaborative (Yjs)
/// document `<name>`: chat rooms cannot start with `doc:` (clients get `INVALID_ROOM`), so
/// the prefix always means a document.
pub trait RoomAccess: Send + Sync + 'static {
    /// Whether `user` may join `room`.
    fn allow(&self, user: &User, room: &str) -> BoxFuture<'static, Result<bool, HookError>>;
}

/// Why a user may not join a room; each feature words it for its own clients.
#[derive(Debug)]
pub(crate) enum AccessRefused {
    /// The rules (or the host's hook) say no.
    Denied,
    /// The host's hook failed.
    Hook(HookError),
    /// The host's hook did not answer within `host_callback_timeout`.
    TimedOut,
}

/// The room access rules: personal rooms are their user's; else the host hook decides; else
/// the token's `rooms` claim; else the room policy.
pub(crate) async fn check_room_access(
    config: &Config,
    hook: Option<&dyn RoomAccess>,
    user: &User,
    room: &str,
) -> Result<(), AccessRefused> {
    if is_personal(room) {
        return if room == personal_room(&user.id) {
            Ok(())
        } else {
            Err(AccessRefused::Denied)
        };
    }
    let allowed = match hook {
        Some(hook) => {
            match tokio::time::timeout(config.host_callback_timeout, hook.allow(user, room)).await {
                Ok(Ok(allowed)) => allowed,
                Ok(Err(e)) => return Err(AccessRefused::Hook(e)),
                Err(_) => return Err(AccessRefused::TimedOut),
            }
        }
        None => match user.claim_allows(room) {
            Some(allowed) => allowed,
            None => config.room_policy == RoomPolicy::Open,
        },
    };
    if allowed {
        Ok(())
    } else {
        Err(AccessRefused::Denied)
    }
}
