//! The heartbeats, connect timeouts and final cleanups of every session of one server, run
//! by one task over one ordered map of deadlines.
//!
//! A task and two timers per session cost an idle connection several hundred bytes (a task's
//! cell is aligned to 128 bytes and holds its whole future) and a wake-up per timer; here an
//! idle session costs one or two map entries, and the pings of thousands of sessions are sent
//! by one task that sleeps until the earliest deadline. The timing is the one Engine.IO
//! specifies: a ping `ping_interval` after the session opened or after the last pong, a close
//! when no pong came `ping_timeout` after a ping. The task runs while the server has sessions:
//! it ends with the last one and the next session starts it again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{CloseReason, EioServer, SessionData};
use crate::protocol::engineio::Packet;

/// What comes due for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// Send a ping.
    Ping,
    /// The pong for the last ping is late: close.
    Pong,
    /// The session must be established by now.
    Connect,
}

struct Entry {
    sid: Arc<str>,
    due: Due,
    /// The session's beat when scheduled: a pong moves the beat on, and the entries of the
    /// earlier beat are dropped when they come due (cheaper than finding and removing them).
    beat: u32,
}

#[derive(Default)]
struct State {
    deadlines: BTreeMap<(u64, u64), Entry>,
    next: u64,
    /// Sessions that closed and wait for their cleanup.
    closed: Vec<Arc<str>>,
    /// Sessions opened so far: tells the task that none opened while it decided to end.
    opens: u64,
}

/// The deadlines of one server's sessions, shared by the sessions (which schedule) and the
/// server's heartbeat task (which runs what comes due).
pub(crate) struct Watch {
    state: Mutex<State>,
    wake: Notify,
    start: Instant,
    stopped: AtomicBool,
    /// Whether the task runs.
    running: AtomicBool,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

impl Watch {
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        Watch {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            start: Instant::now(),
            stopped: AtomicBool::new(false),
            running: AtomicBool::new(false),
            interval,
            timeout,
        }
    }

    /// Milliseconds since the watch began (the clock of every deadline; never 0, which
    /// sessions use for "no deadline").
    pub(crate) fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// Schedules `due` for `sid` at `at_ms`, waking the task when it is the earliest.
    fn schedule(&self, at_ms: u64, sid: &Arc<str>, due: Due, beat: u32) {
        let mut state = self.state.lock();
        state.next += 1;
        let key = (at_ms, state.next);
        let earliest = state
            .deadlines
            .first_key_value()
            .is_none_or(|(first, _)| key < *first);
        state.deadlines.insert(
            key,
            Entry {
                sid: sid.clone(),
                due,
                beat,
            },
        );
        drop(state);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// A new session of `server` (already among its sessions): its first ping, and its
    /// connect deadline when it has one. Starts the task when it does not run.
    pub(crate) fn opened<D: SessionData>(
        self: &Arc<Self>,
        server: &Arc<EioServer<D>>,
        sid: &Arc<str>,
        connect_timeout: Option<Duration>,
    ) {
        self.state.lock().opens += 1;
        let now = self.now_ms();
        self.schedule(
            now.saturating_add(Self::ms(self.interval)),
            sid,
            Due::Ping,
            0,
        );
        if let Some(t) = connect_timeout {
            self.schedule(now.saturating_add(Self::ms(t)), sid, Due::Connect, 0);
        }
        // After the session is scheduled: a task deciding to end either sees it, or has
        // already said it no longer runs (see `end_when_idle`).
        if !self.running.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(Arc::downgrade(server), self.clone()));
        }
    }

    /// Ends the task when the server has no session left and none opened since `opens` was
    /// read (before the sessions were counted); what is left in the map is stale.
    fn end_when_idle(&self, opens: u64, sessions: usize) -> bool {
        if sessions > 0 {
            return false;
        }
        let mut state = self.state.lock();
        if state.opens != opens || !state.closed.is_empty() {
            return false;
        }
        state.deadlines.clear();
        self.running.store(false, Ordering::Release);
        true
    }

    /// A pong answered the pending ping of beat `beat`: the next ping is due an interval
    /// from now.
    pub(crate) fn ponged(&self, sid: &Arc<str>, beat: u32) {
        let at = self.now_ms().saturating_add(Self::ms(self.interval));
        self.schedule(at, sid, Due::Ping, beat);
    }

    /// A session closed: its cleanup runs on the heartbeat task.
    pub(crate) fn closed(&self, sid: &Arc<str>) {
        self.state.lock().closed.push(sid.clone());
        self.wake.notify_one();
    }

    /// Ends the heartbeat task (its server is gone).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Takes what is due now: closed sessions, and entries whose time came. Returns also
    /// when the next deadline is.
    fn take_due(&self, closed: &mut Vec<Arc<str>>, due: &mut Vec<Entry>) -> Option<u64> {
        let now = self.now_ms();
        let mut state = self.state.lock();
        std::mem::swap(&mut state.closed, closed);
        while let Some(entry) = state.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        state.deadlines.first_key_value().map(|(k, _)| k.0)
    }
}

/// The task that runs a server's deadlines and cleanups, until the server is dropped.
async fn run<D: SessionData>(server: Weak<EioServer<D>>, watch: Arc<Watch>) {
    let mut closed = Vec::new();
    let mut due = Vec::new();
    loop {
        if watch.stopped.load(Ordering::Acquire) {
            return;
        }
        let wake = watch.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let opens = watch.state.lock().opens;
        let next = watch.take_due(&mut closed, &mut due);
        let Some(server) = server.upgrade() else {
            return;
        };
        if !closed.is_empty() || !due.is_empty() {
            for sid in closed.drain(..) {
                if let Some(session) = server.find(&sid) {
                    server.finalize(&session);
                }
            }
            for entry in due.drain(..) {
                run_due(&server, &watch, entry);
            }
            // Whatever this turn scheduled or closed is looked at on the next one.
            continue;
        }
        if watch.end_when_idle(opens, server.session_count()) {
            return;
        }
        drop(server);
        match next {
            Some(at) => {
                let at = watch.start + Duration::from_millis(at.saturating_sub(1));
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = &mut wake => {}
                }
            }
            None => wake.await,
        }
    }
}

fn run_due<D: SessionData>(server: &EioServer<D>, watch: &Watch, entry: Entry) {
    let Some(session) = server.find(&entry.sid) else {
        return;
    };
    if session.is_closing() {
        return;
    }
    match entry.due {
        Due::Connect => {
            if !session.is_established() {
                tracing::debug!(sid = %session.sid, "no CONNECT within the connect timeout; closing");
                session.close(CloseReason::ConnectTimeout);
            } else {
                // The handshake's frames are written by now: free the queue's buffer.
                session.outbox.release_if_empty();
            }
        }
        Due::Ping if entry.beat == session.beat() => {
            let deadline = watch.now_ms().saturating_add(Watch::ms(watch.timeout));
            session.ping_sent(deadline);
            if session
                .send_packet(&Packet::Ping(bytes::Bytes::new()))
                .is_ok()
            {
                watch.schedule(deadline, &session.sid, Due::Pong, entry.beat);
            }
        }
        Due::Pong if entry.beat == session.beat() && session.ping_pending() => {
            session.close(CloseReason::PingTimeout);
        }
        // An earlier beat's entry: a pong came in time. The session is visited anyway:
        // an idle one's queue (empty since its ping went out) gives its buffer back, so
        // idle connections hold none between pings, at one allocation per ping interval.
        Due::Pong => session.outbox.release_if_empty(),
        Due::Ping => {}
    }
}
