//! Every Redis key and channel name the cluster uses, in one place.
//!
//! The names are designed for Redis Cluster's slots and used as they are on a single Redis
//! too (one code path). Everything about one room sits in one slot: its keys carry the hash
//! tag `{r:<room>}`, a document's `{d:<doc>}`, a node's own keys and channel `{n:<node>}`;
//! so every Lua script touches keys of one slot only. The name inside the tag is escaped
//! ([`tag`]) so that a `{` or `}` in a room name cannot end the tag early, and the tag is
//! never empty (an empty `{}` would make Redis hash the whole key, scattering a room).

/// Every key and channel starts with this.
pub(super) const PREFIX: &str = "switchboard:";

/// `{<kind>:<escaped name>}`: `%`, `{` and `}` become `%25`, `%7B`, `%7D`, so the tag ends
/// exactly where the name ends and different names give different tags.
fn tag(kind: &str, name: &str) -> String {
    let mut out = String::with_capacity(PREFIX.len() + kind.len() + name.len() + 4);
    out.push_str(PREFIX);
    out.push('{');
    out.push_str(kind);
    out.push(':');
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out.push('}');
    out
}

fn room_key(room: &str, suffix: &str) -> String {
    let mut k = tag("r", room);
    k.push(':');
    k.push_str(suffix);
    k
}

fn node_key(node: &str, suffix: &str) -> String {
    let mut k = tag("n", node);
    k.push(':');
    k.push_str(suffix);
    k
}

/// A room's channel: the nodes with members in the room listen to it.
pub(super) fn room_channel(room: &str) -> String {
    room_key(room, "r")
}

/// The node's own channel: requests and replies addressed to it.
pub(super) fn node_channel(node: &str) -> String {
    node_key(node, "n")
}

/// The channel every node listens to (sharded on a Redis Cluster like the others: it then
/// loads one shard, where classic pub/sub would copy every message to every shard).
pub(super) fn all_channel() -> String {
    format!("{PREFIX}{{all}}")
}

/// The set of the nodes' ids (the node registry: single-key commands only).
pub(super) fn nodes_key() -> String {
    format!("{PREFIX}{{nodes}}")
}

/// A node's liveness key, which expires when its heartbeat stops.
pub(super) fn alive_key(node: &str) -> String {
    node_key(node, "alive")
}

/// The rooms in which the node may hold presence entries: what a survivor walks to reap it.
pub(super) fn node_rooms_key(node: &str) -> String {
    node_key(node, "rooms")
}

/// The keys a join or a leave changes: the room's counts, names and join order, and the
/// users the node holds in the room (all in the room's slot).
pub(super) fn presence_keys(room: &str, node: &str) -> [String; 4] {
    [
        room_key(room, "pc"),
        room_key(room, "pu"),
        room_key(room, "pj"),
        room_node_key(room, node),
    ]
}

/// The users node `node` holds in `room`.
fn room_node_key(room: &str, node: &str) -> String {
    let mut k = room_key(room, "pn:");
    k.push_str(node);
    k
}

/// The keys the members script reads: join order, names.
pub(super) fn members_keys(room: &str) -> [String; 2] {
    [room_key(room, "pj"), room_key(room, "pu")]
}

/// The room's per-user connection counts.
pub(super) fn counts_key(room: &str) -> String {
    room_key(room, "pc")
}

/// Whether `user` is typing in `room`. The room is fixed by the tag, so whatever follows
/// (a user id with `:` or `}`) cannot make two pairs collide.
pub(super) fn typing_key(room: &str, user: &str) -> String {
    let mut k = room_key(room, "ty:");
    k.push_str(user);
    k
}

/// The room's history stream.
pub(super) fn history_key(room: &str) -> String {
    room_key(room, "h")
}

/// A document's update list and compaction generation.
pub(super) fn document_keys(doc: &str) -> [String; 2] {
    let base = tag("d", doc);
    [format!("{base}:y"), format!("{base}:yg")]
}

/// Which node holds a dropped session.
pub(super) fn session_key(pid: &str) -> String {
    let mut k = tag("s", pid);
    k.push_str(":sess");
    k
}

/// The Redis Cluster slot of a key or channel (CRC16/XMODEM of its hash tag, or of the whole
/// name without one, mod 16384): what groups publishes by shard.
pub(super) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names keys with their slots, for failure messages.
    fn describe(keys: &[String]) -> String {
        keys.iter()
            .map(|k| format!("{k}@{} ", slot(k.as_bytes())))
            .collect()
    }

    #[test]
    fn slots_match_the_redis_cluster_spec() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    /// Every key each script or transaction receives, for awkward room and node names:
    /// all of one call's keys must share a slot.
    #[test]
    fn every_script_stays_within_one_slot() {
        let rooms = [
            "r", "", "{", "}", "{}", "a}b{c", "}{", "%7D", "%", "user:1", "doc:x", "ÿ{é}",
        ];
        let nodes = ["n1", "", "{x}", "}"];
        for room in rooms {
            for node in nodes {
                let mut calls: Vec<Vec<String>> = vec![
                    presence_keys(room, node).to_vec(),
                    members_keys(room).to_vec(),
                    document_keys(room).to_vec(),
                ];
                // Typing and history: with the room's other keys, a room is one slot.
                calls.push(vec![
                    counts_key(room),
                    typing_key(room, "u}{:1"),
                    history_key(room),
                    room_channel(room),
                ]);
                calls.push(vec![
                    alive_key(node),
                    node_rooms_key(node),
                    node_channel(node),
                ]);
                for keys in calls {
                    let first = slot(keys[0].as_bytes());
                    assert!(
                        keys.iter().all(|k| slot(k.as_bytes()) == first),
                        "cross-slot: {}",
                        describe(&keys)
                    );
                }
            }
        }
    }

    #[test]
    fn braces_in_names_cannot_merge_rooms_or_break_the_tag() {
        let rooms = ["a}b", "a", "a%7Db", "{a", "a{"];
        let keys: Vec<String> = rooms.iter().map(|r| counts_key(r)).collect();
        for (i, k) in keys.iter().enumerate() {
            for other in &keys[i + 1..] {
                assert_ne!(k, other);
            }
        }
        assert_eq!(counts_key("a}b"), "switchboard:{r:a%7Db}:pc");
        // A room named like another's escape still gets its own tag.
        assert_ne!(counts_key("a%7Db"), counts_key("a}b"));
    }

    #[test]
    fn typing_keys_are_unambiguous_with_colons_in_ids() {
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
    }
}
