//! "Every connection of a user" as one concept: each transport's registry answers for the
//! connections it holds, from the index it keeps anyway (Socket.IO: the personal room of each
//! namespace; SSE: its user index; Yjs: its per-user index), and one [`UserIndex`] per engine
//! lists them. `disconnect_user`, from the host or from another node of the cluster, goes
//! through that one list, so both close the same set; a new transport registers one more
//! [`UserConnections`].

use std::sync::{Arc, Weak};

use parking_lot::RwLock;

/// A registry of connections that knows which belong to which user.
pub trait UserConnections: Send + Sync + 'static {
    /// Closes every connection of `user_id` this registry holds on this node (each the way
    /// its protocol says "the server disconnected you"); returns how many.
    fn disconnect_user(&self, user_id: &str) -> usize;
}

/// Every [`UserConnections`] of an engine. Holds them weakly: each is owned by its transport
/// (which may itself reach the index), so the list keeps nothing alive.
#[derive(Default)]
pub struct UserIndex(RwLock<Vec<Weak<dyn UserConnections>>>);

impl UserIndex {
    /// Adds a registry (once, when its transport is installed).
    pub fn register(&self, registry: Weak<dyn UserConnections>) {
        self.0.write().push(registry);
    }

    /// Closes every connection of `user_id` on this node, in every registry; returns how
    /// many. Not on any hot path: the list is read once per call.
    pub fn disconnect_user(&self, user_id: &str) -> usize {
        // Collected first: a registry may close connections whose cleanup reaches the index.
        let live: Vec<Arc<dyn UserConnections>> =
            self.0.read().iter().filter_map(Weak::upgrade).collect();
        live.iter().map(|r| r.disconnect_user(user_id)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(usize);

    impl UserConnections for Fixed {
        fn disconnect_user(&self, user_id: &str) -> usize {
            if user_id == "alice" {
                self.0
            } else {
                0
            }
        }
    }

    #[test]
    fn every_live_registry_is_asked_and_dropped_ones_are_skipped() {
        let index = UserIndex::default();
        let (a, b): (Arc<dyn UserConnections>, Arc<dyn UserConnections>) =
            (Arc::new(Fixed(2)), Arc::new(Fixed(1)));
        index.register(Arc::downgrade(&a));
        index.register(Arc::downgrade(&b));
        assert_eq!(index.disconnect_user("alice"), 3);
        assert_eq!(index.disconnect_user("bob"), 0);
        drop(b);
        assert_eq!(index.disconnect_user("alice"), 2);
    }
}
