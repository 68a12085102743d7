//! Shared real-time state with no IO: rooms, presence, typing, and the index of every
//! connection of a user (`users`).

pub mod deadlines;
pub mod members;
pub mod presence;
pub mod rooms;
pub mod typing;
pub mod users;

/// The personal room of a user: every connection of the user is in it.
pub fn personal_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// Whether `room` is a personal room (see [`personal_room`]).
pub fn is_personal(room: &str) -> bool {
    room.starts_with("user:")
}
