//! Room history: the last N messages per room, in memory and, with a data directory, in an
//! embedded `redb` database so that it survives a restart.
//!
//! Writes go to one writer thread that commits everything waiting in one transaction (group
//! commit): under load many messages share one fsync, and each sender's ack still waits for
//! its message to be durable.

use std::collections::{HashMap, VecDeque};
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

#[derive(Default)]
struct RoomHistory {
    loaded: bool,
    messages: VecDeque<Arc<ChatMessage>>,
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
    rooms: Mutex<HashMap<Arc<str>, RoomHistory>>,
    disk: Option<Disk>,
}

fn db_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

impl History {
    /// History kept in memory only.
    pub fn in_memory(limit: usize) -> Self {
        History {
            limit,
            rooms: Mutex::new(HashMap::new()),
            disk: None,
        }
    }

    /// History stored under `dir` (created when missing).
    pub fn open(dir: &Path, limit: usize) -> Result<Self, StoreError> {
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
            .spawn(move || writer(db, rx, limit))
            .map_err(db_error)?;
        Ok(History {
            limit,
            rooms: Mutex::new(HashMap::new()),
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

    async fn ensure_loaded(&self, room: &str) -> Result<(), StoreError> {
        if self.disk.is_none() || self.rooms.lock().get(room).is_some_and(|r| r.loaded) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Op::Load(room.to_owned(), tx))?;
        let stored = rx.await.map_err(|_| StoreError::Closed)??;
        let mut rooms = self.rooms.lock();
        let entry = rooms.entry(room.into()).or_default();
        if !entry.loaded {
            entry.loaded = true;
            for m in stored {
                insert_sorted(&mut entry.messages, Arc::new(m), self.limit);
            }
        }
        Ok(())
    }

    /// Stores a message; returns once it is durable (with a data directory) or kept.
    pub async fn append(&self, message: Arc<ChatMessage>) -> Result<(), StoreError> {
        self.ensure_loaded(&message.room_id).await?;
        if self.disk.is_some() {
            let (tx, rx) = oneshot::channel();
            self.send(Op::Append(message.clone(), tx))?;
            rx.await.map_err(|_| StoreError::Closed)??;
        }
        let mut rooms = self.rooms.lock();
        let entry = rooms.entry(message.room_id.as_str().into()).or_default();
        entry.loaded = true;
        insert_sorted(&mut entry.messages, message, self.limit);
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
        self.ensure_loaded(room).await?;
        let rooms = self.rooms.lock();
        let Some(entry) = rooms.get(room) else {
            return Ok(Vec::new());
        };
        let end = match before {
            Some(b) => entry.messages.partition_point(|m| m.id.as_str() < b),
            None => entry.messages.len(),
        };
        let start = end.saturating_sub(limit);
        Ok(entry.messages.range(start..end).cloned().collect())
    }
}

fn insert_sorted(
    messages: &mut VecDeque<Arc<ChatMessage>>,
    message: Arc<ChatMessage>,
    limit: usize,
) {
    let at = messages.partition_point(|m| m.id < message.id);
    if messages.get(at).is_some_and(|m| m.id == message.id) {
        return;
    }
    messages.insert(at, message);
    while messages.len() > limit {
        messages.pop_front();
    }
}

/// The writer thread: batches operations into one transaction each.
fn writer(db: Database, rx: Receiver<Op>, limit: usize) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    while let Ok(first) = rx.recv() {
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
        let h = History::in_memory(3);
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
        let dir = std::env::temp_dir().join(format!("sb-history-{}", crate::transport::new_id()));
        {
            let h = History::open(&dir, 5).unwrap();
            for i in 0..8 {
                h.append(msg("r", &format!("{i:02}"))).await.unwrap();
            }
            h.append(msg("s", "99")).await.unwrap();
        }
        let h = History::open(&dir, 5).unwrap();
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
}
