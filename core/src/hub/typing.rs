//! Typing indicators per user and room, with one resettable auto-stop deadline each. No IO.
//!
//! A client sends `startTyping` on every keystroke; each start only pushes the deadline of
//! its (room, user) entry back. One timer per entry (see [`Typing::start`]'s
//! `spawn_timer`) sleeps until the deadline and re-arms while it moves, so a flood of starts
//! costs one task per entry, not one per frame.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

struct Entry {
    /// False after an explicit stop: the entry stays until its timer wakes (so a new start
    /// reuses that timer instead of adding one) but nobody is typing.
    active: bool,
    generation: u64,
    deadline: Instant,
}

/// Who is typing where.
#[derive(Default)]
pub struct Typing {
    active: HashMap<(Arc<str>, Arc<str>), Entry>,
    generation: u64,
}

/// The outcome of a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Whether the user was not typing before (so others must be told).
    pub changed: bool,
    /// The generation of this start (the cluster's token for it).
    pub generation: u64,
    /// Whether the caller must start the entry's timer (none is running for it).
    pub spawn_timer: bool,
}

/// What a timer does when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Typing went on: sleep until this deadline.
    Sleep(Instant),
    /// The typing expired: tell the others it stopped (the start of `generation`).
    Expired {
        /// The generation of the start that expired.
        generation: u64,
    },
    /// Nothing left to do (stopped explicitly, or gone): the timer ends.
    Done,
}

impl Typing {
    /// Marks `user` typing in `room` until `deadline`.
    pub fn start(&mut self, room: &Arc<str>, user: &Arc<str>, deadline: Instant) -> Started {
        self.generation += 1;
        let generation = self.generation;
        match self.active.get_mut(&(room.clone(), user.clone())) {
            Some(e) => {
                let changed = !e.active;
                e.active = true;
                e.generation = generation;
                e.deadline = deadline;
                Started {
                    changed,
                    generation,
                    spawn_timer: false,
                }
            }
            None => {
                self.active.insert(
                    (room.clone(), user.clone()),
                    Entry {
                        active: true,
                        generation,
                        deadline,
                    },
                );
                Started {
                    changed: true,
                    generation,
                    spawn_timer: true,
                }
            }
        }
    }

    /// Marks `user` not typing; true when it was.
    pub fn stop(&mut self, room: &str, user: &str) -> bool {
        // The entry stays for its timer to remove: exactly one timer per entry.
        match self.active.get_mut(&(Arc::from(room), Arc::from(user))) {
            Some(e) if e.active => {
                e.active = false;
                true
            }
            _ => false,
        }
    }

    /// The entry's timer woke at `now`: decides whether it sleeps on, reports an expiry
    /// (the entry is then gone) or ends.
    pub fn wake(&mut self, room: &Arc<str>, user: &Arc<str>, now: Instant) -> Wake {
        let key = (room.clone(), user.clone());
        let Some(e) = self.active.get(&key) else {
            return Wake::Done;
        };
        if !e.active {
            self.active.remove(&key);
            return Wake::Done;
        }
        if e.deadline > now {
            return Wake::Sleep(e.deadline);
        }
        let generation = e.generation;
        self.active.remove(&key);
        Wake::Expired { generation }
    }

    #[cfg(test)]
    /// How many (room, user) entries exist (each has one timer).
    pub fn len(&self) -> usize {
        self.active.len()
    }

    #[cfg(test)]
    /// Whether no entry exists.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_timer_per_entry_and_resettable_deadline() {
        let mut t = Typing::default();
        let (r, u): (Arc<str>, Arc<str>) = ("r".into(), "u".into());
        let t0 = Instant::now();
        let s = Duration::from_secs(5);
        let first = t.start(&r, &u, t0 + s);
        assert!(first.changed && first.spawn_timer);
        // A flood of starts: no new timer, no new announcement, the deadline moves.
        for i in 1..=1000 {
            let again = t.start(&r, &u, t0 + s + Duration::from_millis(i));
            assert!(!again.changed && !again.spawn_timer);
        }
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.wake(&r, &u, t0 + s),
            Wake::Sleep(t0 + s + Duration::from_millis(1000)),
            "a newer start keeps typing alive"
        );
        let last = t.start(&r, &u, t0 + s * 2);
        assert_eq!(
            t.wake(&r, &u, t0 + s * 2),
            Wake::Expired {
                generation: last.generation
            }
        );
        assert!(t.is_empty());
        assert_eq!(t.wake(&r, &u, t0 + s * 3), Wake::Done);
    }

    #[test]
    fn stop_then_start_reuses_the_running_timer() {
        let mut t = Typing::default();
        let (r, u): (Arc<str>, Arc<str>) = ("r".into(), "u".into());
        let t0 = Instant::now();
        let s = Duration::from_secs(5);
        assert!(t.start(&r, &u, t0 + s).spawn_timer);
        assert!(t.stop("r", "u"));
        assert!(!t.stop("r", "u"), "stopping twice tells nobody");
        for _ in 0..100 {
            let again = t.start(&r, &u, t0 + s);
            assert!(again.changed, "typing again after a stop is news");
            assert!(!again.spawn_timer, "the stopped entry's timer still runs");
            assert!(t.stop("r", "u"));
        }
        assert_eq!(t.len(), 1);
        // The timer wakes on a stopped entry: it removes it and ends without an expiry.
        assert_eq!(t.wake(&r, &u, t0 + s), Wake::Done);
        assert!(t.is_empty());
        assert!(t.start(&r, &u, t0 + s).spawn_timer);
    }
}
