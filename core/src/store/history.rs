//! Room history: the last N messages per room, in memory and, with a data directory, in an
//! embedded `redb` database so that it survives a restart.
//!
//! Writes go to one writer thread that commits everything waiting in one transaction (group
//! commit): under load many messages share one fsync, and each sender's ack still waits for
//! its message to be durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{ChatMessage, StoreError};

/// Messages keyed by (room, id); ids sort by time, so a room's range is its history in order.
const MESSAGES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("messages");

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Memory a cached message is charged: its strings plus the `Arc`, the struct and the
/// queue slot.
fn cost(m: &ChatMessage) -> usize {
    m.id.len()
        + m.room_id.len()
        + m.text.len()
        + m.user_id.len()
        + m.username.len()
        + m.timestamp.len()
        + 160
}

struct Cached {
    messages: VecDeque<Arc<ChatMessage>>,
    bytes: usize,
    /// Its key in `Cache::order`.
    used: u64,
}

/// The rooms' histories in memory, least recently used first out: bounded in rooms and in
/// bytes. With a data directory an entry is an exact copy of the stored history (a miss
/// reloads it); without one it is the only copy.
struct Cache {
    rooms: HashMap<Arc<str>, Cached>,
    order: BTreeMap<u64, Arc<str>>,
    tick: u64,
    bytes: usize,
    max_rooms: usize,
    max_bytes: usize,
}

impl Cache {
    fn new(max_rooms: usize, max_bytes: usize) -> Self {
        Cache {
            rooms: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            max_rooms: max_rooms.max(1),
            max_bytes,
        }
    }

    /// The room's entry, marked as just used.
    fn get(&mut self, room: &str) -> Option<&mut Cached> {
        let entry = self.rooms.get_mut(room)?;
        self.tick += 1;
        if let Some(key) = self.order.remove(&entry.used) {
            self.order.insert(self.tick, key);
        }
        entry.used = self.tick;
        Some(entry)
    }

    /// Adds messages to the room's entry, creating it when `create`; then evicts the least
    /// recently used other rooms while over a bound.
    fn add(
        &mut self,
        room: &str,
        messages: impl IntoIterator<Item = Arc<ChatMessage>>,
        limit: usize,
        create: bool,
    ) {
        if self.get(room).is_none() {
            if !create {
                return;
            }
            self.tick += 1;
            let key: Arc<str> = room.into();
            self.order.insert(self.tick, key.clone());
            self.rooms.insert(
                key,
                Cached {
                    messages: VecDeque::new(),
                    bytes: 0,
                    used: self.tick,
                },
            );
        }
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        let before = entry.bytes;
        for m in messages {
            insert_sorted(entry, m, limit);
        }
        self.bytes = self.bytes - before + entry.bytes;
        let keep = entry.used;
        self.evict(keep);
    }

    fn evict(&mut self, keep: u64) {
        while self.rooms.len() > self.max_rooms || self.bytes > self.max_bytes {
            let Some((&used, _)) = self.order.iter().find(|(&used, _)| used != keep) else {
                break;
            };
            if let Some(room) = self.order.remove(&used) {
                if let Some(gone) = self.rooms.remove(&room) {
                    self.bytes -= gone.bytes;
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.rooms.len()
    }
}

enum Op {
    Append(Arc<ChatMessage>, oneshot::Sender<Result<(), StoreError>>),
    Load(
        String,
        oneshot::Sender<Result<Vec<ChatMessage>, StoreError>>,
    ),
}

struct Disk {
    tx: Option<Sender<Op>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Disk {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The history of every room.
pub struct History {
    limit: usize,
    cache: Mutex<Cache>,
    disk: Option<Disk>,
}

fn db_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

impl History {
    /// History kept in memory only: at most `max_rooms` rooms and `max_bytes`; an evicted
    /// room's history is gone.
    pub fn in_memory(limit: usize, max_rooms: usize, max_bytes: usize) -> Self {
        History {
            limit,
            cache: Mutex::new(Cache::new(max_rooms, max_bytes)),
            disk: None,
        }
    }

    /// History stored under `dir` (created when missing), cached in memory for at most
    /// `max_rooms` rooms and `max_bytes`.
    pub fn open(
        dir: &Path,
        limit: usize,
        max_rooms: usize,
        max_bytes: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("history.redb");
        let db = Database::create(&path)
            .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", path.display())))?;
        {
            let txn = db.begin_write().map_err(db_error)?;
            txn.open_table(MESSAGES).map_err(db_error)?;
            txn.commit().map_err(db_error)?;
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("switchboard-history".into())
            .spawn(move || writer(db, rx, limit, max_rooms))
            .map_err(db_error)?;
        Ok(History {
            limit,
            cache: Mutex::new(Cache::new(max_rooms, max_bytes)),
            disk: Some(Disk {
                tx: Some(tx),
                thread: Some(thread),
            }),
        })
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let tx = self
            .disk
            .as_ref()
            .and_then(|d| d.tx.as_ref())
            .ok_or(StoreError::Closed)?;
        tx.send(op).map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on the room's messages: the cached ones, or (with a data directory, on a
    /// miss) the stored ones, which are cached when there are any. Reading a room that has
    /// no history creates nothing.
    async fn with_room<T>(
        &self,
        room: &str,
        f: impl FnOnce(&VecDeque<Arc<ChatMessage>>) -> T,
    ) -> Result<T, StoreError> {
        {
            let mut cache = self.cache.lock();
            if let Some(entry) = cache.get(room) {
                return Ok(f(&entry.messages));
            }
            if self.disk.is_none() {
                return Ok(f(&VecDeque::new()));
            }
        }
        let (tx, rx) = oneshot::channel();
        self.send(Op::Load(room.to_owned(), tx))?;
        let stored = rx.await.map_err(|_| StoreError::Closed)??;
        let mut cache = self.cache.lock();
        if stored.is_empty() {
            // Nothing stored: an entry made meanwhile (an append) is the whole history.
            return Ok(match cache.get(room) {
                Some(entry) => f(&entry.messages),
                None => f(&VecDeque::new()),
            });
        }
        // The store holds every acknowledged message, so merging it into an entry made
        // meanwhile gives the exact history.
        cache.add(room, stored.into_iter().map(Arc::new), self.limit, true);
        Ok(match cache.get(room) {
            Some(entry) => f(&entry.messages),
            // Evicted at once (a bound smaller than this one room): serve without caching.
            None => f(&VecDeque::new()),
        })
    }

    /// Stores a message; returns once it is durable (with a data directory) or kept.
    pub async fn append(&self, message: Arc<ChatMessage>) -> Result<(), StoreError> {
        if self.disk.is_some() {
            let (tx, rx) = oneshot::channel();
            self.send(Op::Append(message.clone(), tx))?;
            rx.await.map_err(|_| StoreError::Closed)??;
        }
        // With a data directory only a cached room takes the message: an uncached one is
        // loaded from the store (which has it now) on its next use, so the cache never holds
        // a part of a room's history.
        let room = message.room_id.clone();
        self.cache
            .lock()
            .add(&room, [message], self.limit, self.disk.is_none());
        Ok(())
    }

    /// Up to `limit` messages of `room` older than the message `before` (when given), oldest
    /// first.
    pub async fn query(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<ChatMessage>>, StoreError> {
        self.with_room(room, |messages| {
            let end = match before {
                Some(b) => messages.partition_point(|m| m.id.as_str() < b),
                None => messages.len(),
            };
            let start = end.saturating_sub(limit);
            messages.range(start..end).cloned().collect()
        })
        .await
    }

    #[cfg(test)]
    /// How many rooms are cached in memory.
    pub fn cached_rooms(&self) -> usize {
        self.cache.lock().len()
    }
}

fn insert_sorted(entry: &mut Cached, message: Arc<ChatMessage>, limit: usize) {
    let messages = &mut entry.messages;
    let at = messages.partition_point(|m| m.id < message.id);
    if messages.get(at).is_some_and(|m| m.id == message.id) {
        return;
    }
    entry.bytes += cost(&message);
    messages.insert(at, message);
    while messages.len() > limit {
        if let Some(old) = messages.pop_front() {
            entry.bytes -= cost(&old);
        }
    }
}

/// The writer thread: batches operations into one transaction each.
fn writer(db: Database, rx: Receiver<Op>, limit: usize, max_rooms: usize) {
    // Stored messages per room, to trim without counting each time: a cache like the
    // history's, so bounded the same way (forgotten counts are counted again).
    let mut counts: HashMap<String, usize> = HashMap::new();
    while let Ok(first) = rx.recv() {
        if counts.len() > max_rooms {
            counts.clear();
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let (appends, loads): (Vec<Op>, Vec<Op>) = batch
            .into_iter()
            .partition(|op| matches!(op, Op::Append(..)));
        if !appends.is_empty() {
            let result = write_batch(&db, &appends, &mut counts, limit);
            if result.is_err() {
                // The in-memory counts may be off after a failed transaction.
                counts.clear();
            }
            for op in appends {
                if let Op::Append(_, reply) = op {
                    let _ = reply.send(
                        result
                            .as_ref()
                            .map(|_| ())
                            .map_err(|e| StoreError::Database(e.to_string())),
                    );
                }
            }
        }
        for op in loads {
            if let Op::Load(room, reply) = op {
                let _ = reply.send(load_room(&db, &room, limit));
            }
        }
    }
}

fn write_batch(
    db: &Database,
    appends: &[Op],
    counts: &mut HashMap<String, usize>,
    limit: usize,
) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_error)?;
    {
        let mut table = txn.open_table(MESSAGES).map_err(db_error)?;
        for op in appends {
            let Op::Append(m, _) = op else { continue };
            let json = serde_json::to_vec(&**m).map_err(db_error)?;
            table
                .insert((m.room_id.as_str(), m.id.as_str()), json.as_slice())
                .map_err(db_error)?;
            let count = match counts.get_mut(&m.room_id) {
                Some(c) => {
                    *c += 1;
                    *c
                }
                None => {
                    let c = table
                        .range((m.room_id.as_str(), "")..)
                        .map_err(db_error)?
                        .take_while(|e| e.as_ref().is_ok_and(|(k, _)| k.value().0 == m.room_id))
                        .count();
                    counts.insert(m.room_id.clone(), c);
                    c
                }
            };
            if count > limit {
                let oldest: Vec<String> = table
                    .range((m.room_id.as_str(), "")..)
                    .map_err(db_error)?
                    .take(count - limit)
                    .filter_map(|e| e.ok().map(|(k, _)| k.value().1.to_owned()))
                    .collect();
                for id in &oldest {
                    table
                        .remove((m.room_id.as_str(), id.as_str()))
                        .map_err(db_error)?;
                }
                if let Some(c) = counts.get_mut(&m.room_id) {
                    *c -= oldest.len();
                }
            }
        }
    }
    txn.commit().map_err(db_error)
}

fn load_room(db: &Database, room: &str, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
    let txn = db.begin_read().map_err(db_error)?;
    let table = txn.open_table(MESSAGES).map_err(db_error)?;
    let mut out: VecDeque<ChatMessage> = VecDeque::new();
    for entry in table.range((room, "")..).map_err(db_error)? {
        let (k, v) = entry.map_err(db_error)?;
        if k.value().0 != room {
            break;
        }
        // A record that does not parse is skipped rather than failing the whole room.
        if let Ok(m) = serde_json::from_slice::<ChatMessage>(v.value()) {
            out.push_back(m);
            if out.len() > limit {
                out.pop_front();
            }
        }
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, id: &str) -> Arc<ChatMessage> {
        Arc::new(ChatMessage {
            id: id.into(),
            room_id: room.into(),
            text: format!("text {id}"),
            user_id: "u".into(),
            username: "U".into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
        })
    }

    #[tokio::test]
    async fn memory_history_is_capped_and_ordered() {
        let h = History::in_memory(3, 100, 1 << 20);
        for id in ["01", "03", "02", "04"] {
            h.append(msg("r", id)).await.unwrap();
        }
        let ids: Vec<_> = h
            .query("r", None, 10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id.clone())
            .collect();
        assert_eq!(ids, ["02", "03", "04"]);
        let ids: Vec<_> = h
            .query("r", Some("04"), 1)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id.clone())
            .collect();
        assert_eq!(ids, ["03"]);
        assert!(h.query("other", None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn disk_history_survives_reopen_and_is_capped() {
        let dir =
            std::env::temp_dir().join(format!("sb-history-{}", crate::helpers::ids::new_id()));
        {
            let h = History::open(&dir, 5, 100, 1 << 20).unwrap();
            for i in 0..8 {
                h.append(msg("r", &format!("{i:02}"))).await.unwrap();
            }
            h.append(msg("s", "99")).await.unwrap();
        }
        let h = History::open(&dir, 5, 100, 1 << 20).unwrap();
        let ids: Vec<_> = h
            .query("r", None, 100)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id.clone())
            .collect();
        assert_eq!(ids, ["03", "04", "05", "06", "07"]);
        assert_eq!(h.query("s", None, 100).await.unwrap().len(), 1);
        drop(h);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn ids(messages: &[Arc<ChatMessage>]) -> Vec<String> {
        messages.iter().map(|m| m.id.clone()).collect()
    }

    #[tokio::test]
    async fn reading_an_unknown_room_creates_nothing() {
        let h = History::in_memory(10, 100, 1 << 20);
        for i in 0..1000 {
            assert!(h
                .query(&format!("nope-{i}"), None, 10)
                .await
                .unwrap()
                .is_empty());
        }
        assert_eq!(h.cached_rooms(), 0);
        let dir =
            std::env::temp_dir().join(format!("sb-history-{}", crate::helpers::ids::new_id()));
        let h = History::open(&dir, 10, 100, 1 << 20).unwrap();
        for i in 0..1000 {
            assert!(h
                .query(&format!("nope-{i}"), None, 10)
                .await
                .unwrap()
                .is_empty());
        }
        assert_eq!(h.cached_rooms(), 0);
        drop(h);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn memory_cache_evicts_the_least_recently_used_room() {
        let h = History::in_memory(10, 3, 1 << 20);
        for room in ["a", "b", "c"] {
            h.append(msg(room, "01")).await.unwrap();
        }
        // Using `a` makes `b` the least recently used.
        assert_eq!(h.query("a", None, 10).await.unwrap().len(), 1);
        h.append(msg("d", "01")).await.unwrap();
        assert_eq!(h.cached_rooms(), 3);
        assert!(
            h.query("b", None, 10).await.unwrap().is_empty(),
            "b was evicted"
        );
        for room in ["a", "c", "d"] {
            assert_eq!(h.query(room, None, 10).await.unwrap().len(), 1, "{room}");
        }
    }

    #[tokio::test]
    async fn memory_cache_is_bounded_in_bytes() {
        let big = |room: &str, id: &str| {
            Arc::new(ChatMessage {
                text: "x".repeat(100_000),
                ..(*msg(room, id)).clone()
            })
        };
        let h = History::in_memory(100, 1000, 1 << 20);
        for i in 0..30 {
            h.append(big(&format!("r{i}"), "01")).await.unwrap();
            assert!(h.cache.lock().bytes <= 1 << 20);
        }
        assert!(h.cached_rooms() <= 10, "{} rooms", h.cached_rooms());
        // One room's own messages past the bound: its oldest go, it stays.
        let h = History::in_memory(100, 1000, 1 << 20);
        for i in 0..30 {
            h.append(big("one", &format!("{i:02}"))).await.unwrap();
        }
        assert_eq!(h.cached_rooms(), 1);
    }

    #[tokio::test]
    async fn evicted_rooms_reload_from_the_data_dir() {
        let dir =
            std::env::temp_dir().join(format!("sb-history-{}", crate::helpers::ids::new_id()));
        let h = History::open(&dir, 5, 2, 1 << 20).unwrap();
        for i in 0..7 {
            h.append(msg("a", &format!("{i:02}"))).await.unwrap();
        }
        h.append(msg("b", "01")).await.unwrap();
        h.append(msg("c", "01")).await.unwrap();
        assert!(h.cached_rooms() <= 2);
        assert_eq!(
            ids(&h.query("a", None, 100).await.unwrap()),
            ["02", "03", "04", "05", "06"]
        );
        // An append to an evicted room: the reload has all of it.
        h.append(msg("b", "02")).await.unwrap();
        h.append(msg("c", "02")).await.unwrap();
        h.append(msg("a", "07")).await.unwrap();
        assert_eq!(
            ids(&h.query("a", None, 100).await.unwrap()),
            ["03", "04", "05", "06", "07"]
        );
        assert_eq!(ids(&h.query("b", None, 100).await.unwrap()), ["01", "02"]);
        assert_eq!(h.cached_rooms(), 2);
        drop(h);
        let _ = std::fs::remove_dir_all(dir);
    }
}
