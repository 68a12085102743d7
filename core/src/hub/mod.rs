//! Shared real-time state with no IO: rooms, presence, typing, recovery.

pub mod deadlines;
pub mod presence;
pub mod recovery;
pub mod rooms;
pub mod typing;
