//! Deadlines of many connections in one ordered map, checked by one task: what the token
//! expiry of every connection costs instead of a timer each (an idle connection holds one
//! entry, and a tick that finds nothing due looks at the first key only).

use std::collections::BTreeMap;

/// Identifies one scheduled deadline (its time in ms, then a sequence number).
pub type DeadlineKey = (u64, u64);

/// Items due at times in milliseconds.
#[derive(Debug)]
pub struct Deadlines<T> {
    queue: BTreeMap<DeadlineKey, T>,
    next: u64,
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Deadlines {
            queue: BTreeMap::new(),
            next: 0,
        }
    }
}

impl<T> Deadlines<T> {
    /// Schedules `item` at `at_ms`; the key removes it again.
    pub fn insert(&mut self, at_ms: u64, item: T) -> DeadlineKey {
        self.next += 1;
        let key = (at_ms, self.next);
        self.queue.insert(key, item);
        key
    }

    /// Unschedules an item (`None` when it already came due or was removed).
    pub fn remove(&mut self, key: DeadlineKey) -> Option<T> {
        self.queue.remove(&key)
    }

    /// Takes every item due at or before `now_ms`, earliest first.
    pub fn pop_due(&mut self, now_ms: u64) -> Vec<(DeadlineKey, T)> {
        match self.queue.first_key_value() {
            Some((&(at, _), _)) if at <= now_ms => {}
            _ => return Vec::new(),
        }
        let later = self.queue.split_off(&(now_ms.saturating_add(1), 0));
        std::mem::replace(&mut self.queue, later)
            .into_iter()
            .collect()
    }

    #[cfg(test)]
    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_due_in_order_and_removed_ones_never() {
        let mut d = Deadlines::default();
        let a = d.insert(300, "a");
        d.insert(100, "b");
        d.insert(300, "c");
        let gone = d.insert(200, "gone");
        assert_eq!(d.remove(gone), Some("gone"));
        assert!(d.pop_due(99).is_empty());
        let due: Vec<_> = d.pop_due(300).into_iter().map(|(_, v)| v).collect();
        assert_eq!(due, vec!["b", "a", "c"]);
        assert_eq!(d.remove(a), None);
        assert!(d.is_empty());
    }
}
