//! Every Redis key and channel name the cluster uses, in one place (so that a change of
//! naming, hash tags for Redis Cluster for one, is local to this file).

/// Every key and channel starts with this.
pub(super) const PREFIX: &str = "switchboard:";

pub(super) fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}{kind}:{name}")
}

/// A room's channel: the nodes with members in the room listen to it.
pub(super) fn room_channel(room: &str) -> String {
    key("r", room)
}

/// The node's own channel: requests and replies addressed to it.
pub(super) fn node_channel(node: &str) -> String {
    key("n", node)
}

/// The channel every node listens to.
pub(super) fn all_channel() -> String {
    format!("{PREFIX}all")
}

/// The set of the nodes' ids.
pub(super) fn nodes_key() -> String {
    format!("{PREFIX}nodes")
}

/// A node's liveness key, which expires when its heartbeat stops.
pub(super) fn alive_key(node: &str) -> String {
    key("alive", node)
}

/// A node's `[room, user]` entry, as stored by a join and removed by a leave.
pub(super) fn entry(room: &str, user: &str) -> String {
    serde_json::to_string(&(room, user)).unwrap_or_default()
}

/// The (room, user) presence the node `node` holds.
pub(super) fn node_presence_key(node: &str) -> String {
    key("pn", node)
}

/// The keys a join or a leave changes: the room's counts, names and join order, and the
/// node's entries.
pub(super) fn presence_keys(room: &str, node: &str) -> [String; 4] {
    [
        key("pc", room),
        key("pu", room),
        key("pj", room),
        node_presence_key(node),
    ]
}

/// The keys the members script reads: join order, names.
pub(super) fn members_keys(room: &str) -> [String; 2] {
    [key("pj", room), key("pu", room)]
}

/// The room's per-user connection counts.
pub(super) fn counts_key(room: &str) -> String {
    key("pc", room)
}

pub(super) fn typing_key(room: &str, user: &str) -> String {
    // A user id may contain ':'; JSON keeps the pair unambiguous.
    key("ty", &entry(room, user))
}

/// The room's history stream.
pub(super) fn history_key(room: &str) -> String {
    key("h", room)
}

/// A document's update list and compaction generation.
pub(super) fn document_keys(doc: &str) -> [String; 2] {
    [key("y", doc), key("yg", doc)]
}

/// Which node holds a dropped session.
pub(super) fn session_key(pid: &str) -> String {
    key("sess", pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_keys_are_unambiguous_with_colons_in_ids() {
        // Joined with ':' these would all be `ty:a:b:c`.
        let keys = [
            typing_key("a:b", "c"),
            typing_key("a", "b:c"),
            typing_key("a:b:c", ""),
            typing_key("", "a:b:c"),
        ];
        for (i, k) in keys.iter().enumerate() {
            for other in &keys[i + 1..] {
                assert_ne!(k, other);
            }
        }
        assert_eq!(typing_key("a\"", "b"), "switchboard:ty:[\"a\\\"\",\"b\"]");
    }
}
