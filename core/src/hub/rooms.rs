//! Room membership: which members are in which room. No IO.
//!
//! Generic over the member key and handle so that the Socket.IO layer stores socket handles
//! and tests store plain values. The lock is held for map updates and for iterating one
//! room's members (pushing to an outbound queue never blocks), never across an `.await`.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::RwLock;

use super::members::Members;

/// What a join or leave changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// The member was added (join) or removed (leave).
    pub added: bool,
    /// The room appeared (its first member) or disappeared (its last member left).
    pub room_changed: bool,
}

/// Members by room.
pub struct Rooms<K, V> {
    map: RwLock<HashMap<Arc<str>, Members<K, V>>>,
}

impl<K, V> Default for Rooms<K, V> {
    fn default() -> Self {
        Rooms {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Rooms<K, V> {
    /// Adds a member; true when it was not in the room yet.
    pub fn join(&self, room: &Arc<str>, key: K, value: V) -> bool {
        self.join_tracking(room, key, value).added
    }

    /// Adds a member and tells whether the room just came into being (decided under the
    /// lock, so that of concurrent joiners exactly one sees it).
    pub fn join_tracking(&self, room: &Arc<str>, key: K, value: V) -> Change {
        let mut map = self.map.write();
        let members = map.entry(room.clone()).or_default();
        let was_empty = members.is_empty();
        let added = members.insert(key, value);
        Change {
            added,
            room_changed: was_empty && added,
        }
    }

    /// The room's name as the map holds it, when the room exists: a new member keeps that
    /// allocation rather than its own copy of the name.
    pub fn shared_name(&self, room: &str) -> Option<Arc<str>> {
        self.map
            .read()
            .get_key_value(room)
            .map(|(name, _)| name.clone())
    }

    /// Removes a member; true when it was in the room. An emptied room is forgotten.
    pub fn leave(&self, room: &str, key: &K) -> bool {
        self.leave_tracking(room, key).added
    }

    /// Removes a member and tells whether the room is now gone (`added` means removed).
    pub fn leave_tracking(&self, room: &str, key: &K) -> Change {
        let mut map = self.map.write();
        let Some(members) = map.get_mut(room) else {
            return Change::default();
        };
        let removed = members.remove(key).is_some();
        let emptied = members.is_empty();
        if emptied {
            map.remove(room);
        }
        Change {
            added: removed,
            room_changed: removed && emptied,
        }
    }

    /// Calls `f` for every member of `room`, under the read lock.
    pub fn for_each(&self, room: &str, f: impl FnMut(&K, &V)) {
        if let Some(members) = self.map.read().get(room) {
            members.for_each(f);
        }
    }

    /// Calls `f` once for every member of any of `rooms` (members of several rooms once).
    pub fn for_each_in_any(&self, rooms: &[Arc<str>], mut f: impl FnMut(&K, &V)) {
        if let [room] = rooms {
            return self.for_each(room, f);
        }
        let map = self.map.read();
        let mut seen: HashSet<&K> = HashSet::new();
        for room in rooms {
            if let Some(members) = map.get(&**room) {
                for (k, v) in members.iter() {
                    if seen.insert(k) {
                        f(k, v);
                    }
                }
            }
        }
    }

    /// Number of members in `room`.
    pub fn len(&self, room: &str) -> usize {
        self.map.read().get(room).map_or(0, Members::len)
    }

    /// Every room with its member count.
    pub fn counts(&self) -> Vec<(Arc<str>, usize)> {
        self.map
            .read()
            .iter()
            .map(|(r, m)| (r.clone(), m.len()))
            .collect()
    }

    #[cfg(test)]
    /// Whether no room has members.
    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_leave_and_iterate() {
        let rooms: Rooms<u32, &str> = Rooms::default();
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        assert!(rooms.join(&a, 1, "one"));
        assert!(!rooms.join(&a, 1, "one"));
        assert!(rooms.join(&a, 2, "two"));
        assert!(rooms.join(&b, 2, "two"));
        // A later member can share the name the map holds.
        assert!(Arc::ptr_eq(&rooms.shared_name("a").unwrap(), &a));
        assert!(rooms.shared_name("c").is_none());
        assert_eq!(rooms.len("a"), 2);
        let mut seen = Vec::new();
        rooms.for_each_in_any(&[a.clone(), b.clone()], |k, _| seen.push(*k));
        seen.sort();
        assert_eq!(seen, vec![1, 2]);
        assert!(rooms.leave("a", &1));
        assert!(!rooms.leave("a", &1));
        assert!(rooms.leave("a", &2));
        assert!(rooms.leave("b", &2));
        assert!(rooms.is_empty());
    }
}
