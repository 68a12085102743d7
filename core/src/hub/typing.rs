//! Typing indicators per user and room, with generations for auto-stop timers. No IO.

use std::collections::HashMap;
use std::sync::Arc;

/// Who is typing where.
#[derive(Default)]
pub struct Typing {
    active: HashMap<(Arc<str>, Arc<str>), u64>,
    generation: u64,
}

/// The outcome of a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Whether the user was not typing before (so others must be told).
    pub changed: bool,
    /// The generation an auto-stop timer must present to stop this typing.
    pub generation: u64,
}

impl Typing {
    /// Marks `user` typing in `room`.
    pub fn start(&mut self, room: &Arc<str>, user: &Arc<str>) -> Started {
        self.generation += 1;
        let generation = self.generation;
        let changed = self
            .active
            .insert((room.clone(), user.clone()), generation)
            .is_none();
        Started {
            changed,
            generation,
        }
    }

    /// Marks `user` not typing; true when it was.
    pub fn stop(&mut self, room: &str, user: &str) -> bool {
        self.active
            .remove(&(Arc::from(room), Arc::from(user)))
            .is_some()
    }

    /// Stops typing only if no start happened since `generation` (the auto-stop timer).
    pub fn expire(&mut self, room: &Arc<str>, user: &Arc<str>, generation: u64) -> bool {
        let key = (room.clone(), user.clone());
        if self.active.get(&key) == Some(&generation) {
            self.active.remove(&key);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_only_and_expiry_by_generation() {
        let mut t = Typing::default();
        let (r, u): (Arc<str>, Arc<str>) = ("r".into(), "u".into());
        let first = t.start(&r, &u);
        assert!(first.changed);
        let second = t.start(&r, &u);
        assert!(!second.changed);
        assert!(
            !t.expire(&r, &u, first.generation),
            "a newer start keeps typing alive"
        );
        assert!(t.expire(&r, &u, second.generation));
        assert!(!t.stop("r", "u"));
        t.start(&r, &u);
        assert!(t.stop("r", "u"));
    }
}
