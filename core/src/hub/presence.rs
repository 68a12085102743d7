//! Who is in which room, per user: a user with several connections counts once. No IO.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::members::Members;

/// One user present in a room, as clients see it in `roomMembers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user id.
    pub user_id: Arc<str>,
    /// The display name.
    pub username: Arc<str>,
}

struct Entry {
    username: Arc<str>,
    connections: u32,
    since: u64,
}

/// Presence of users in rooms.
#[derive(Default)]
pub struct Presence {
    /// Users by room; a user alone in a room is kept inline (no table of its own).
    rooms: HashMap<Arc<str>, Members<Arc<str>, Entry>>,
    clock: u64,
}

impl Presence {
    /// Counts one more connection of `user` in `room`; true when it is the user's first
    /// (the user just appeared).
    pub fn join(&mut self, room: &Arc<str>, user: &Arc<str>, username: &Arc<str>) -> bool {
        self.clock += 1;
        let since = self.clock;
        let users = self.rooms.entry(room.clone()).or_default();
        match users.get_mut(user) {
            Some(e) => {
                e.connections += 1;
                false
            }
            None => {
                users.insert(
                    user.clone(),
                    Entry {
                        username: username.clone(),
                        connections: 1,
                        since,
                    },
                );
                true
            }
        }
    }

    /// Counts one connection fewer; true when it was the user's last (the user left).
    pub fn leave(&mut self, room: &str, user: &str) -> bool {
        let Some(users) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(e) = users.get_mut(user) else {
            return false;
        };
        e.connections -= 1;
        if e.connections > 0 {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            self.rooms.remove(room);
        }
        true
    }

    /// The users in `room`, in the order they arrived.
    pub fn members(&self, room: &str) -> Vec<Member> {
        let Some(users) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut list: Vec<(&Arc<str>, &Entry)> = users.iter().collect();
        list.sort_by_key(|(_, e)| e.since);
        list.into_iter()
            .map(|(id, e)| Member {
                user_id: id.clone(),
                username: e.username.clone(),
            })
            .collect()
    }

    /// Whether `user` is in `room`.
    pub fn contains(&self, room: &str, user: &str) -> bool {
        self.rooms.get(room).is_some_and(|u| u.contains_key(user))
    }

    /// Every (room, user id, username) present.
    pub fn entries(&self) -> Vec<(Arc<str>, Arc<str>, Arc<str>)> {
        self.rooms
            .iter()
            .flat_map(|(room, users)| {
                users
                    .iter()
                    .map(move |(user, e)| (room.clone(), user.clone(), e.username.clone()))
            })
            .collect()
    }

    /// Every room with its number of users.
    pub fn room_sizes(&self) -> Vec<(Arc<str>, usize)> {
        self.rooms
            .iter()
            .map(|(r, u)| (r.clone(), u.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_with_two_connections_counts_once() {
        let mut p = Presence::default();
        let (room, alice, bob): (Arc<str>, Arc<str>, Arc<str>) =
            ("r".into(), "alice".into(), "bob".into());
        assert!(p.join(&room, &alice, &"Alice".into()));
        assert!(!p.join(&room, &alice, &"Alice".into()));
        assert!(p.join(&room, &bob, &"Bob".into()));
        let ids: Vec<_> = p.members("r").into_iter().map(|m| m.user_id).collect();
        assert_eq!(ids, vec![alice.clone(), bob.clone()]);
        assert!(!p.leave("r", "alice"));
        assert!(p.leave("r", "alice"));
        assert!(!p.leave("r", "alice"));
        assert!(p.leave("r", "bob"));
        assert!(p.room_sizes().is_empty());
    }
}
