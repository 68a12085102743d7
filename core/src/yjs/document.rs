//! A loaded document's state: its Yjs document, its awareness states, its connections and the
//! fan-out of every change to them (the registry of loaded documents is in `registry.rs`).
//!
//! A document's state sits behind one `parking_lot` mutex, held while a client's message is
//! applied and its frames are queued (CPU only: no IO, no `.await`). Every broadcast is framed
//! once and its bytes shared by all connections' bounded queues.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use yrs::sync::Awareness;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, ReadTxn, StateVector, Transact, Update};

use super::protocol::{self, Inbound};
use crate::protocol::frame::Frame;
use crate::transport::outbox::{Outbox, PushError};

/// A connection's id, unique within the engine.
pub(crate) type ConnId = u64;

/// WebSocket close codes of the Yjs endpoint. 4400–4499 tell y-websocket 3.x not to
/// reconnect (reconnecting cannot help); 4500–4599 and the standard codes let it retry.
pub mod close_code {
    /// The message could not be decoded or applied, or the client broke a protocol bound:
    /// too many messages in one frame, too many awareness client ids, too many updates
    /// whose dependencies are missing.
    pub const MALFORMED: u16 = 4400;
    /// No token, or an invalid or expired one.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The user may not open this document.
    pub const FORBIDDEN: u16 = 4403;
    /// An update, the document it would grow, or an awareness state is over its size limit.
    pub const TOO_LARGE: u16 = 4413;
    /// The server disconnected the user (`disconnect_user`, reason `Disconnected by the
    /// server`). A kick, not a ban: y-websocket 3.x does not reconnect after a 44xx code
    /// (its `closed` event carries code and reason), but an app may open the provider
    /// again, and older y-websocket versions reconnect by themselves; only an app that
    /// stops accepting the user's token keeps the user out.
    pub const DISCONNECTED: u16 = 4410;
    /// A host hook or the document store failed; try again later.
    pub const UNAVAILABLE: u16 = 4500;
    /// The server is shutting down, or the client did not answer a ping.
    pub const GOING_AWAY: u16 = 1001;
    /// The client reads too slowly: its outbound queue overflowed.
    pub const POLICY: u16 = 1008;
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseWith {
    pub code: u16,
    pub reason: String,
}

impl CloseWith {
    pub(crate) fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseWith {
            code,
            reason: reason.into(),
        }
    }

    /// The close of a client whose outbound queue overflowed.
    pub(crate) fn slow_reader() -> Self {
        CloseWith::new(
            close_code::POLICY,
            "Outbound queue full: the client reads too slowly",
        )
    }
}

/// Tells a connection's task to close (a broadcast overflowed its queue, its writer failed,
/// or the server shuts down).
#[derive(Default)]
pub(crate) struct CloseSignal {
    with: Mutex<Option<CloseWith>>,
    notify: Notify,
}

impl CloseSignal {
    /// Asks the connection to close; the first reason wins.
    pub(crate) fn fire(&self, with: CloseWith) {
        self.with.lock().get_or_insert(with);
        self.notify.notify_one();
    }

    /// Whether the connection was asked to close: nothing more is worth doing for it.
    pub(crate) fn is_fired(&self) -> bool {
        self.with.lock().is_some()
    }

    /// Waits until the connection is asked to close.
    pub(crate) async fn wait(&self) -> CloseWith {
        loop {
            let notified = self.notify.notified();
            if let Some(with) = self.with.lock().clone() {
                return with;
            }
            notified.await;
        }
    }
}

/// A connection as its document sees it.
pub(crate) struct ConnEntry {
    pub outbox: Arc<Outbox>,
    pub close: Arc<CloseSignal>,
    /// Awareness clients whose states this connection sent (removed when it closes).
    controlled: HashSet<ClientID>,
}

impl ConnEntry {
    pub(crate) fn new(outbox: Arc<Outbox>, close: Arc<CloseSignal>) -> Self {
        ConnEntry {
            outbox,
            close,
            controlled: HashSet::new(),
        }
    }

    /// Whether the connection is closing (its queue overflowed, its writer failed, or it was
    /// told to close): work for it is wasted.
    fn is_closing(&self) -> bool {
        self.close.is_fired() || self.outbox.is_closed()
    }

    fn push(&self, frame: Frame) {
        if let Err(PushError::Overflow) = self.outbox.push(frame) {
            self.close.fire(CloseWith::slow_reader());
        }
    }
}

/// Size limits applied to clients' messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_document_bytes: usize,
    /// Largest awareness state (its JSON) one client id may have.
    pub max_awareness_bytes: usize,
    /// Most awareness client ids one connection may control.
    pub max_awareness_clients: usize,
    /// Most frames a sync step 1 answer may take (the snapshot, then the updates after it);
    /// past it the snapshot is encoded again.
    pub max_answer_frames: usize,
    /// Most awareness bytes (JSON) sent in a greeting or a query answer: the states left out
    /// come with their owners' next renewal (every 15 s), instead of overflowing the queue.
    pub max_awareness_answer_bytes: usize,
}

impl Limits {
    /// No limits: for changes from other nodes, which are trusted.
    pub(crate) const UNLIMITED: Limits = Limits {
        max_document_bytes: usize::MAX,
        max_awareness_bytes: usize::MAX,
        max_awareness_clients: usize::MAX,
        max_answer_frames: MAX_ANSWER_UPDATES,
        max_awareness_answer_bytes: usize::MAX,
    };

    /// The limits `config` sets.
    pub(crate) fn new(config: &crate::config::Config) -> Self {
        Limits {
            max_document_bytes: config.yjs_max_document_bytes,
            max_awareness_bytes: config.yjs_max_awareness_bytes,
            max_awareness_clients: config.yjs_max_awareness_clients,
            // A newcomer's queue holds its greeting, this answer and what is broadcast
            // meanwhile.
            max_answer_frames: (config.outbound_queue_frames / 4).clamp(1, MAX_ANSWER_UPDATES),
            max_awareness_answer_bytes: config.outbound_queue_bytes / 4,
        }
    }
}

/// A document over its size limit by the estimate is measured (encoded) again at most this
/// often, unless 1/16 of the limit changed since the last measure.
const REMEASURE_AFTER: Duration = Duration::from_secs(1);

/// Most updates queued after the snapshot in a sync step 1 answer.
const MAX_ANSWER_UPDATES: usize = 256;

/// Changes since the snapshot may reach half its size plus this before a sync step 1 answer
/// encodes it again: re-encoding the document costs a client at least this many bytes of
/// changes (or [`Limits::max_answer_frames`] changes).
const MIN_STALE_BYTES: usize = 64 * 1024;

/// What handling a client's message did, for the caller to act on off the lock.
#[derive(Default)]
pub(crate) struct Effects {
    /// Updates that changed the document (v1 encoding), in order.
    pub updates: Vec<Vec<u8>>,
    /// Awareness updates applied (encoded), in order.
    pub awareness: Vec<Vec<u8>>,
    /// The document became dirty and has no flusher yet: start one.
    pub start_flusher: bool,
    /// The connection must be closed (after the effects above).
    pub close: Option<CloseWith>,
}

/// Unstored changes: when the first one and the last one happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dirty {
    first: Instant,
    last: Instant,
}

/// A loaded document.
///
/// Encoding the whole document costs time proportional to its size (tens of milliseconds
/// for a few megabytes), under the lock, on a runtime worker. A client must not be able to
/// trigger one per message: the state is encoded once (the snapshot) and every sync step 1
/// is answered with it plus the updates applied since (frames already built for their
/// broadcast, shared); it is encoded again only once those changes are large or numerous
/// (or at a store), so each encode is paid for by that many changes.
pub(crate) struct DocState {
    pub(super) awareness: Awareness,
    conns: HashMap<ConnId, ConnEntry>,
    /// The encoded state's exact size at the last encode (or load), and when that was.
    measured: usize,
    measured_at: Instant,
    /// The whole state at the last encode, framed as a sync step 2; `None` until the first
    /// sync step 1 after a load.
    snapshot: Option<Frame>,
    /// Every change applied since the last encode, framed as sync updates (kept only while
    /// there is a snapshot).
    since: Vec<Frame>,
    /// Bytes of the changes applied since the last encode: the state's size is at most
    /// `measured + since_bytes`.
    since_bytes: usize,
    /// Bytes of client updates yrs holds back since it last had none pending (at most).
    pending_bytes: usize,
    /// How many times the whole state was encoded (the tests check it stays bounded).
    encodes: u64,
    dirty: Option<Dirty>,
    flusher_running: bool,
}

/// An empty update (no structs, empty delete set) in v1 encoding.
const EMPTY_UPDATE: [u8; 2] = [0, 0];

/// Applies a client's update (v1 encoding) to `doc`; returns what it changed, as an update.
///
/// yrs can panic on crafted input (see [`encode_state_as_update`]); a panic here is caught
/// and the update refused like any malformed one, instead of killing the connection's task
/// with its socket left open.
pub(crate) fn apply_client_update(doc: &Doc, raw: &[u8]) -> Result<Vec<u8>, String> {
    let update = protocol::decode_update(raw).map_err(|e| e.to_string())?;
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        txn.apply_update(update)
            .map(|()| txn.encode_update_v1())
            .map_err(|e| e.to_string())
    }));
    applied.unwrap_or_else(|_| Err("yrs panicked applying the update".into()))
}

/// What `doc` has beyond `sv`, pending structs included, as one update (v1 encoding).
///
/// A crafted update can leave pending structs that yrs cannot merge back (it unwraps the
/// failed merge): then every sync step 1 answer and every store would panic and the document
/// would be lost to everyone. In that case the pending structs, never integrated, are left
/// out.
pub(crate) fn encode_state_as_update(doc: &Doc, sv: &StateVector) -> Vec<u8> {
    let txn = doc.transact();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        txn.encode_state_as_update_v1(sv)
    }))
    .unwrap_or_else(|_| {
        tracing::warn!("a Yjs document's pending structs cannot be encoded; leaving them out");
        txn.encode_diff_v1(sv)
    })
}

impl DocState {
    /// Takes the unstored changes' times (the caller stores the document).
    pub(crate) fn take_dirty(&mut self) -> Option<Dirty> {
        self.dirty.take()
    }

    /// Puts back the unstored changes' times after a failed store, keeping the first
    /// change's time so that the next try is not delayed.
    pub(crate) fn restore_dirty(&mut self, dirty: Dirty) {
        let d = self.dirty.get_or_insert(dirty);
        d.first = d.first.min(dirty.first);
    }

    /// Whether there are unstored changes.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.is_some()
    }

    /// When the document is due to be stored: after `debounce` without changes, at the latest
    /// `max_delay` after the first unstored one. `None` once it is clean, which also ends the
    /// flusher's turn (the next change starts a new one).
    pub(crate) fn store_due(&mut self, debounce: Duration, max_delay: Duration) -> Option<Instant> {
        match self.dirty {
            None => {
                self.flusher_running = false;
                None
            }
            Some(d) => Some((d.last + debounce).min(d.first + max_delay)),
        }
    }

    /// A document holding `stored` (a Yjs update), or an empty one.
    pub(crate) fn new(stored: Option<&[u8]>) -> Result<Self, String> {
        let doc = Doc::new();
        if let Some(bytes) = stored {
            let update = Update::decode_v1(bytes).map_err(|e| e.to_string())?;
            doc.transact_mut()
                .apply_update(update)
                .map_err(|e| e.to_string())?;
        }
        Ok(DocState {
            awareness: Awareness::new(doc),
            conns: HashMap::new(),
            measured: stored.map_or(0, <[u8]>::len),
            measured_at: Instant::now(),
            snapshot: None,
            since: Vec::new(),
            since_bytes: 0,
            pending_bytes: 0,
            encodes: 0,
            dirty: None,
            flusher_running: false,
        })
    }

    /// The whole state as one update (v1 encoding).
    pub(crate) fn encode_state(&self) -> Vec<u8> {
        encode_state_as_update(self.awareness.doc(), &StateVector::default())
    }

    /// Encodes the whole state (for a store, or because the snapshot is stale); it becomes
    /// the snapshot and the exact size.
    pub(crate) fn encode_snapshot(&mut self) -> Vec<u8> {
        let bytes = self.encode_state();
        self.encodes += 1;
        self.measured = bytes.len();
        self.measured_at = Instant::now();
        self.snapshot = Some(protocol::sync_step2(&bytes));
        self.since.clear();
        self.since_bytes = 0;
        bytes
    }

    /// The encoded state's size, or more (changes since the last encode counted in full).
    fn size_estimate(&self) -> usize {
        self.measured + self.since_bytes
    }

    /// Answers a sync step 1 from connection `id`: the snapshot, then the changes since,
    /// encoding the snapshot again first when it is missing or stale.
    ///
    /// Whatever the client's state vector, it gets the whole state: what it already has is
    /// ignored on its side, and answering its exact difference would take an encode per
    /// message (yrs walks every block for the delete set whatever the state vector).
    fn answer_sync_step1(&mut self, id: ConnId, limits: Limits) {
        if !self.conns.contains_key(&id) {
            return;
        }
        let stale = self.since.len() >= limits.max_answer_frames
            || self.since_bytes > self.measured / 2 + MIN_STALE_BYTES;
        if self.snapshot.is_none() || stale {
            self.encode_snapshot();
        }
        let (Some(conn), Some(snapshot)) = (self.conns.get(&id), &self.snapshot) else {
            return;
        };
        conn.push(snapshot.clone());
        for update in &self.since {
            if conn.is_closing() {
                return;
            }
            conn.push(update.clone());
        }
    }

    /// Queues the awareness states, up to `budget` bytes of JSON (the rest come with their
    /// owners' next renewal), to `conn`.
    fn push_awareness_states(&self, conn: &ConnEntry, budget: usize) {
        let mut left = budget;
        let clients: Vec<ClientID> = self
            .awareness
            .iter()
            .filter_map(|(client, state)| {
                let len = state.data.as_ref()?.len();
                let fits = len <= left;
                if fits {
                    left -= len;
                }
                fits.then_some(client)
            })
            .collect();
        if clients.is_empty() {
            return;
        }
        if let Ok(update) = self.awareness.update_with_clients(clients) {
            conn.push(protocol::awareness(&update));
        }
    }

    fn broadcast(&self, frame: &Frame) {
        for conn in self.conns.values() {
            conn.push(frame.clone());
        }
    }

    /// Adds a connection and queues its greeting: sync step 1 and, when there are awareness
    /// states, a separate awareness message (at most `limits.max_awareness_answer_bytes` of
    /// them, so that the greeting fits the newcomer's queue).
    pub(crate) fn attach(&mut self, id: ConnId, conn: ConnEntry, limits: Limits) {
        let sv = self.awareness.doc().transact().state_vector();
        conn.push(protocol::sync_step1(&sv));
        self.push_awareness_states(&conn, limits.max_awareness_answer_bytes);
        self.conns.insert(id, conn);
    }

    /// Removes a connection; removes the awareness states it controlled and tells the others.
    /// Returns the awareness removal (encoded) when there was one.
    pub(crate) fn detach(&mut self, id: ConnId) -> Option<Vec<u8>> {
        let conn = self.conns.remove(&id)?;
        let gone: Vec<ClientID> = conn
            .controlled
            .into_iter()
            .filter(|c| self.awareness.meta(*c).is_some())
            .collect();
        if gone.is_empty() {
            return None;
        }
        for client in &gone {
            self.awareness.remove_state(*client);
        }
        let update = self.awareness.update_with_clients(gone).ok()?.encode_v1();
        self.broadcast(&protocol::awareness_encoded(&update));
        Some(update)
    }

    /// Asks every connection to close.
    pub(crate) fn close_all(&self, with: &CloseWith) {
        for conn in self.conns.values() {
            conn.close.fire(with.clone());
        }
    }

    pub(super) fn mark_dirty(&mut self, effects: &mut Effects) {
        let now = Instant::now();
        match &mut self.dirty {
            Some(d) => d.last = now,
            None => {
                self.dirty = Some(Dirty {
                    first: now,
                    last: now,
                })
            }
        }
        if !self.flusher_running {
            self.flusher_running = true;
            effects.start_flusher = true;
        }
    }

    /// Handles a connection's messages as the reference y-websocket server does.
    pub(crate) fn handle(&mut self, id: ConnId, messages: Vec<Inbound>, limits: Limits) -> Effects {
        let mut effects = Effects::default();
        for message in messages {
            // A connection that is closing (its queue overflowed, say) gets nothing more done
            // for it; its task closes it.
            if self.conns.get(&id).is_some_and(ConnEntry::is_closing) {
                break;
            }
            let result = match message {
                Inbound::SyncStep1(_) => {
                    self.answer_sync_step1(id, limits);
                    Ok(())
                }
                Inbound::SyncStep2(update) | Inbound::Update(update) => {
                    self.apply_update(&update, limits, &mut effects)
                }
                Inbound::Awareness(update) => {
                    self.apply_awareness(id, update, limits, &mut effects)
                }
                Inbound::QueryAwareness => {
                    if let Some(conn) = self.conns.get(&id) {
                        self.push_awareness_states(conn, limits.max_awareness_answer_bytes);
                    }
                    Ok(())
                }
                Inbound::Ignored => Ok(()),
            };
            if let Err(close) = result {
                effects.close = Some(close);
                break;
            }
        }
        effects
    }

    /// Applies a client's update; broadcasts what it changed to every connection, the sender
    /// included (as the reference server does).
    fn apply_update(
        &mut self,
        raw: &[u8],
        limits: Limits,
        effects: &mut Effects,
    ) -> Result<(), CloseWith> {
        let too_large = || {
            CloseWith::new(
                close_code::TOO_LARGE,
                format!(
                    "Document too large (max {} bytes)",
                    limits.max_document_bytes
                ),
            )
        };
        if self.size_estimate() + raw.len() > limits.max_document_bytes {
            // The estimate only grows between encodes (deletions count as growth): measure
            // before refusing, but only once enough changed since the last measure, or a
            // while after it. Else a client near the limit would get a whole-document encode
            // per tiny update; the price is that, within a second of a measure, the limit may
            // bite up to 1/16 of it early.
            if self.since_bytes >= limits.max_document_bytes / 16
                || self.measured_at.elapsed() >= REMEASURE_AFTER
            {
                self.encode_snapshot();
            }
            if self.size_estimate() + raw.len() > limits.max_document_bytes {
                return Err(too_large());
            }
        }
        let malformed = |e: &dyn std::fmt::Display| {
            tracing::debug!(error = %e, "malformed Yjs update");
            CloseWith::new(close_code::MALFORMED, "Malformed update")
        };
        let delta = apply_client_update(self.awareness.doc(), raw).map_err(|e| malformed(&e))?;
        // yrs keeps what it cannot integrate yet (its dependencies are missing) and merges
        // every later such update into it, at a cost growing with it: count it against the
        // size (the delta does not show it) and refuse to keep much of it. What the update
        // did integrate is still passed on below.
        let mut outcome = Ok(());
        if self.awareness.doc().transact().has_missing_updates() {
            self.pending_bytes += raw.len();
            self.since_bytes += raw.len();
            if self.pending_bytes > limits.max_document_bytes / 16 {
                outcome = Err(CloseWith::new(
                    close_code::MALFORMED,
                    "Too many updates whose dependencies are missing",
                ));
            }
        } else {
            self.pending_bytes = 0;
        }
        if delta == EMPTY_UPDATE {
            return outcome;
        }
        self.since_bytes += delta.len();
        let frame = protocol::sync_update(&delta);
        self.broadcast(&frame);
        if self.snapshot.is_some() {
            if self.since.len() >= MAX_ANSWER_UPDATES {
                // Stale for any answer: drop it rather than keep a frame per change until the
                // next store; the next sync step 1 encodes the document again.
                self.snapshot = None;
                self.since.clear();
            } else {
                self.since.push(frame);
            }
        }
        self.mark_dirty(effects);
        effects.updates.push(delta);
        outcome
    }

    /// Applies a client's awareness update; the connection now controls the clients it added
    /// or renewed; the change goes to every connection, the sender included (an idle client
    /// stays connected because its own awareness renewals come back).
    fn apply_awareness(
        &mut self,
        id: ConnId,
        mut update: yrs::sync::AwarenessUpdate,
        limits: Limits,
        effects: &mut Effects,
    ) -> Result<(), CloseWith> {
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        self.check_awareness(conn, &update, limits)?;
        // A removal of a client never seen would leave an entry behind for good (yrs keeps
        // a removed client's clock): drop it, there is nothing to remove.
        update.clients.retain(|client, entry| {
            &*entry.json != "null" || self.awareness.meta(*client).is_some()
        });
        let summary = match self.awareness.apply_update_summary(update) {
            Ok(Some(summary)) => summary,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "malformed awareness update");
                return Err(CloseWith::new(close_code::MALFORMED, "Malformed awareness"));
            }
        };
        let claimed: Vec<ClientID> = summary
            .added
            .iter()
            .chain(&summary.updated)
            .copied()
            .filter(|c| {
                self.conns
                    .get(&id)
                    .is_some_and(|e| !e.controlled.contains(c))
            })
            .collect();
        for client in &claimed {
            // A client that reconnected before its old connection was noticed gone: the old
            // connection's close must not remove it.
            for (other, conn) in self.conns.iter_mut() {
                if *other == id {
                    conn.controlled.insert(*client);
                } else {
                    conn.controlled.remove(client);
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            for client in &summary.removed {
                conn.controlled.remove(client);
            }
        }
        let changed = summary.all_changes();
        if changed.is_empty() {
            return Ok(());
        }
        if let Ok(update) = self.awareness.update_with_clients(changed) {
            let encoded = update.encode_v1();
            self.broadcast(&protocol::awareness_encoded(&encoded));
            effects.awareness.push(encoded);
        }
        Ok(())
    }

    /// Checks a connection's awareness update against the limits before it is applied: each
    /// state at most `max_awareness_bytes`, the connection controlling at most
    /// `max_awareness_clients` client ids (a y-websocket provider has one). A violator is
    /// closed, and its states removed with it.
    fn check_awareness(
        &self,
        conn: &ConnEntry,
        update: &yrs::sync::AwarenessUpdate,
        limits: Limits,
    ) -> Result<(), CloseWith> {
        let too_many = || {
            CloseWith::new(
                close_code::MALFORMED,
                format!(
                    "Too many awareness clients (max {} per connection)",
                    limits.max_awareness_clients
                ),
            )
        };
        if update.clients.len() > limits.max_awareness_clients {
            return Err(too_many());
        }
        let mut claimed = conn.controlled.len();
        for (client, entry) in &update.clients {
            if entry.json.len() > limits.max_awareness_bytes {
                return Err(CloseWith::new(
                    close_code::TOO_LARGE,
                    format!(
                        "Awareness state too large (max {} bytes)",
                        limits.max_awareness_bytes
                    ),
                ));
            }
            if &*entry.json != "null" && !conn.controlled.contains(client) {
                claimed += 1;
            }
        }
        if claimed > limits.max_awareness_clients {
            return Err(too_many());
        }
        Ok(())
    }

    /// Applies an update that did not come from a connection of this node (another node of
    /// a cluster). Returns whether it changed the document.
    pub(crate) fn apply_remote_update(&mut self, raw: &[u8], effects: &mut Effects) -> bool {
        let limits = Limits::UNLIMITED;
        let before = effects.updates.len();
        self.apply_update(raw, limits, effects).is_ok() && effects.updates.len() > before
    }

    /// Applies awareness from another node and passes it on to this node's connections.
    pub(crate) fn apply_remote_awareness(&mut self, update: yrs::sync::AwarenessUpdate) {
        if let Ok(Some(summary)) = self.awareness.apply_update_summary(update) {
            if let Ok(u) = self.awareness.update_with_clients(summary.all_changes()) {
                self.broadcast(&protocol::awareness(&u));
            }
        }
    }
}

#[cfg(test)]
mod tests;
