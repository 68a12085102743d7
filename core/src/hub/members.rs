//! The members of one room: a map that holds a single member inline.
//!
//! Most rooms an idle connection makes have one member (its user's personal room, a room of
//! its own, the presence of a user alone in a room). A `HashMap` with one entry allocates a
//! table of four buckets (~120–210 bytes with its control bytes) for each of them; one
//! member kept inline costs nothing beyond the outer map's entry, which is as large either
//! way. A second member moves both into a map, boxed: the outer map's entry stays the size
//! of one inline member (24 bytes for a socket id and handle, against an inline map's 48),
//! and most rooms have one member.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// A room's members: none or one inline, or a map.
#[derive(Debug, Clone)]
pub enum Members<K, V> {
    /// Exactly one member.
    One(K, V),
    /// Any number; `None` when there is none (an emptied room), which allocates nothing.
    // Boxed on purpose: the outer map's entry then holds a pointer, not the map's 48 bytes.
    #[allow(clippy::box_collection)]
    Many(Option<Box<HashMap<K, V>>>),
}

impl<K, V> Default for Members<K, V> {
    fn default() -> Self {
        Members::Many(None)
    }
}

impl<K: Eq + Hash, V> Members<K, V> {
    /// Adds or replaces a member; true when it was not there yet (as `HashMap::insert`
    /// returning `None`).
    pub fn insert(&mut self, key: K, value: V) -> bool {
        match self {
            Members::Many(map) if map.as_ref().is_none_or(|m| m.is_empty()) => {
                *self = Members::One(key, value);
                true
            }
            Members::Many(Some(map)) => map.insert(key, value).is_none(),
            Members::Many(None) => unreachable!("an empty room takes its member inline above"),
            Members::One(k, v) if *k == key => {
                *v = value;
                false
            }
            Members::One(..) => {
                let Members::One(k, v) = std::mem::take(self) else {
                    unreachable!("matched One above")
                };
                let mut map = HashMap::with_capacity(2);
                map.insert(k, v);
                map.insert(key, value);
                *self = Members::Many(Some(Box::new(map)));
                true
            }
        }
    }

    /// Removes a member, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Members::Many(map) => map.as_mut()?.remove(key),
            Members::One(k, _) if (*k).borrow() == key => match std::mem::take(self) {
                Members::One(_, v) => Some(v),
                Members::Many(_) => None,
            },
            Members::One(..) => None,
        }
    }

    /// A member's value.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Members::Many(map) => map.as_ref()?.get(key),
            Members::One(k, v) => ((*k).borrow() == key).then_some(v),
        }
    }

    /// A member's value, to change.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Members::Many(map) => map.as_mut()?.get_mut(key),
            Members::One(k, v) => ((*k).borrow() == key).then_some(v),
        }
    }

    /// Whether `key` is a member.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            Members::One(..) => 1,
            Members::Many(map) => map.as_ref().map_or(0, |m| m.len()),
        }
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` for every member (the broadcast path: one branch per room, not per member).
    #[inline]
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        match self {
            Members::One(k, v) => f(k, v),
            Members::Many(Some(map)) => {
                for (k, v) in map.iter() {
                    f(k, v);
                }
            }
            Members::Many(None) => {}
        }
    }

    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let (one, many) = match self {
            Members::One(k, v) => (Some((k, v)), None),
            Members::Many(map) => (None, map.as_ref().map(|m| m.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_member_inline_then_a_map_then_empty() {
        let mut m: Members<String, u32> = Members::default();
        assert!(m.is_empty());
        assert!(m.insert("a".into(), 1));
        assert!(matches!(m, Members::One(..)));
        // The same key again replaces its value.
        assert!(!m.insert("a".into(), 2));
        assert_eq!(m.get("a"), Some(&2));
        assert_eq!(m.get("b"), None);
        assert!(m.insert("b".into(), 3));
        assert!(matches!(m, Members::Many(_)));
        assert_eq!(m.len(), 2);
        let mut seen: Vec<_> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        seen.sort();
        assert_eq!(seen, vec![("a".into(), 2), ("b".into(), 3)]);
        *m.get_mut("b").unwrap() += 1;
        assert_eq!(m.remove("b"), Some(4));
        assert_eq!(m.remove("b"), None);
        assert_eq!(m.remove("a"), Some(2));
        assert!(m.is_empty());
        // An emptied map takes one member inline again.
        assert!(m.insert("c".into(), 5));
        assert!(matches!(m, Members::One(..)));
        assert_eq!(m.remove("x"), None);
        assert_eq!(m.remove("c"), Some(5));
        assert!(m.is_empty() && !m.contains_key("c"));
        let mut n = 0;
        m.for_each(|_, _| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn a_room_entry_is_the_size_of_one_member() {
        use std::sync::Arc;
        // A socket id and its handle: what every room of the namespace holds.
        assert_eq!(std::mem::size_of::<Members<Arc<str>, Arc<u8>>>(), 24);
    }
}
