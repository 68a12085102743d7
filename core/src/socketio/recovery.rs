//! Connection state recovery (Socket.IO v4.6+): the log of recent broadcasts and the state
//! of recently dropped connections. No IO.
//!
//! Every room broadcast gets an offset, a string the client keeps as the last argument it
//! received. A client that reconnects within the window presents its private id (`pid`) and
//! that offset; if both are known it gets its socket id, rooms and user back, plus every
//! broadcast to its rooms after the offset. Recovery is all or nothing: when any missed
//! packet has already left the log, the client starts a fresh session.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use crate::auth::User;
use crate::protocol::frame::Frame;

/// What a dropped connection leaves behind for its return.
#[derive(Debug, Clone)]
pub struct SavedSession {
    /// The socket id, reused on recovery.
    pub sid: Arc<str>,
    /// The private session id the client presents.
    pub pid: Arc<str>,
    /// The rooms the socket was in.
    pub rooms: Vec<Arc<str>>,
    /// The authenticated user.
    pub user: Option<Arc<User>>,
    /// The auth payload of the original connect.
    pub auth: Value,
    /// Log position when the socket connected: replay starts here for a client that
    /// received no broadcast (and so holds no offset).
    pub connected_seq: u64,
    saved_at: Instant,
    /// What it is charged against the log's byte bound (its auth payload may be as large
    /// as a packet).
    bytes: usize,
    /// Tells this save from a later one of the same pid in `Inner::session_order`.
    stamp: u64,
}

impl SavedSession {
    /// Describes a socket that just dropped.
    pub fn new(
        sid: Arc<str>,
        pid: Arc<str>,
        rooms: Vec<Arc<str>>,
        user: Option<Arc<User>>,
        auth: Value,
        connected_seq: u64,
    ) -> Self {
        let bytes = serde_json::to_string(&auth).map_or(0, |a| a.len())
            + rooms.iter().map(|r| r.len() + 16).sum::<usize>()
            + sid.len()
            + pid.len()
            + 256;
        SavedSession {
            sid,
            pid,
            rooms,
            user,
            auth,
            connected_seq,
            saved_at: Instant::now(),
            bytes,
            stamp: 0,
        }
    }
}

/// One broadcast kept for recovery. Boxed slices rather than `Vec`s: an entry lives for the
/// recovery window, and a `Vec` grown by pushes keeps its spare capacity that long.
struct LoggedPacket {
    seq: u64,
    at: Instant,
    rooms: Box<[Arc<str>]>,
    except: Box<[Arc<str>]>,
    frames: Box<[Frame]>,
    /// What it is charged against the log's byte bound.
    bytes: usize,
}

impl LoggedPacket {
    fn cost(rooms: &[Arc<str>], except: &[Arc<str>], frames: &[Frame]) -> usize {
        let names: usize = rooms.iter().chain(except).map(|s| s.len() + 16).sum();
        let payload: usize = frames.iter().map(|f| f.payload().len() + 32).sum();
        names + payload + 64
    }
}

struct Inner {
    packets: VecDeque<LoggedPacket>,
    /// Sum of the packets' `bytes`.
    bytes: usize,
    sessions: HashMap<Arc<str>, SavedSession>,
    /// Saves in order, oldest first, to drop the oldest past the byte bound (entries of
    /// sessions restored or saved again since are skipped).
    session_order: VecDeque<(Arc<str>, u64)>,
    /// Sum of the sessions' `bytes`.
    session_bytes: usize,
    next_stamp: u64,
    next_seq: u64,
    last_prune: Instant,
}

/// The recovery log of one namespace.
pub struct RecoveryLog {
    inner: Mutex<Inner>,
    window: Duration,
    max_packets: usize,
    max_bytes: usize,
    boot: String,
}

impl RecoveryLog {
    /// A log keeping broadcasts and dropped sessions for `window`, at most `max_packets`
    /// broadcasts and `max_bytes` of them (the oldest go first; a client that missed one
    /// that went starts a fresh session), and at most `max_bytes` of dropped sessions too
    /// (the oldest go first; their clients start fresh sessions).
    pub fn new(window: Duration, max_packets: usize, max_bytes: usize) -> Self {
        RecoveryLog {
            inner: Mutex::new(Inner {
                packets: VecDeque::new(),
                bytes: 0,
                sessions: HashMap::new(),
                session_order: VecDeque::new(),
                session_bytes: 0,
                next_stamp: 0,
                next_seq: 1,
                last_prune: Instant::now(),
            }),
            window,
            max_packets,
            max_bytes,
            // Offsets from an earlier run of the process must not match this one's.
            boot: crate::helpers::ids::new_id()[..8].to_owned(),
        }
    }

    /// How long dropped sessions and broadcasts are kept.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether a dropped session that may still come back was in `room`.
    pub fn has_session_in(&self, room: &str) -> bool {
        let now = Instant::now();
        self.inner.lock().sessions.values().any(|s| {
            now.duration_since(s.saved_at) <= self.window && s.rooms.iter().any(|r| &**r == room)
        })
    }

    /// The sequence number the next broadcast will get.
    pub fn position(&self) -> u64 {
        self.inner.lock().next_seq
    }

    /// The offset of the broadcast just before `seq` (what a client that saw everything up
    /// to position `seq` resumes from); `None` at the very start of the log.
    pub(crate) fn offset_before(&self, seq: u64) -> Option<String> {
        seq.checked_sub(1).map(|s| format!("{}.{}", self.boot, s))
    }

    /// Reserves the offset of the next broadcast; the caller encodes it into the packet and
    /// then calls [`RecoveryLog::record`].
    pub fn next_offset(&self) -> (u64, String) {
        let mut inner = self.inner.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        (seq, format!("{}.{}", self.boot, seq))
    }

    /// Keeps a broadcast for clients that missed it.
    pub fn record(
        &self,
        seq: u64,
        rooms: Vec<Arc<str>>,
        except: Vec<Arc<str>>,
        frames: Vec<Frame>,
    ) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        // Concurrent broadcasts may record slightly out of order; keep the log sorted.
        let at = inner
            .packets
            .iter()
            .rposition(|p| p.seq < seq)
            .map_or(0, |i| i + 1);
        let bytes = LoggedPacket::cost(&rooms, &except, &frames);
        inner.bytes += bytes;
        inner.packets.insert(
            at,
            LoggedPacket {
                seq,
                at: now,
                rooms: rooms.into_boxed_slice(),
                except: except.into_boxed_slice(),
                frames: frames.into_boxed_slice(),
                bytes,
            },
        );
        while inner.packets.len() > self.max_packets || inner.bytes > self.max_bytes {
            let Some(oldest) = inner.packets.pop_front() else {
                break;
            };
            inner.bytes -= oldest.bytes;
        }
        self.prune(&mut inner, now);
    }

    fn prune(&self, inner: &mut Inner, now: Instant) {
        if now.duration_since(inner.last_prune) < Duration::from_secs(1) {
            return;
        }
        inner.last_prune = now;
        let window = self.window;
        while inner
            .packets
            .front()
            .is_some_and(|p| now.duration_since(p.at) > window)
        {
            if let Some(oldest) = inner.packets.pop_front() {
                inner.bytes -= oldest.bytes;
            }
        }
        let mut freed = 0;
        inner.sessions.retain(|_, s| {
            let keep = now.duration_since(s.saved_at) <= window;
            if !keep {
                freed += s.bytes;
            }
            keep
        });
        inner.session_bytes -= freed;
        let Inner {
            sessions,
            session_order,
            ..
        } = inner;
        session_order.retain(|(pid, stamp)| sessions.get(pid).is_some_and(|s| s.stamp == *stamp));
    }

    /// Keeps a dropped socket's state for the window.
    pub fn save(&self, mut session: SavedSession) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.next_stamp += 1;
        session.stamp = inner.next_stamp;
        inner.session_bytes += session.bytes;
        inner
            .session_order
            .push_back((session.pid.clone(), session.stamp));
        if let Some(old) = inner.sessions.insert(session.pid.clone(), session) {
            inner.session_bytes -= old.bytes;
        }
        while inner.session_bytes > self.max_bytes {
            let Some((pid, stamp)) = inner.session_order.pop_front() else {
                break;
            };
            if inner.sessions.get(&pid).is_some_and(|s| s.stamp == stamp) {
                if let Some(gone) = inner.sessions.remove(&pid) {
                    inner.session_bytes -= gone.bytes;
                }
            }
        }
        self.prune(&mut inner, now);
    }

    #[cfg(test)]
    /// Whether a dropped session with this pid is still waiting for its client.
    pub fn is_pending(&self, pid: &str) -> bool {
        self.inner.lock().sessions.contains_key(pid)
    }

    /// Takes back a dropped session and the frames it missed; `None` when the pid or offset
    /// is unknown or expired, or when a missed broadcast has already left the log.
    pub fn restore(&self, pid: &str, offset: Option<&str>) -> Option<(SavedSession, Vec<Frame>)> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let session = inner.sessions.remove(pid)?;
        inner.session_bytes -= session.bytes;
        if now.duration_since(session.saved_at) > self.window {
            return None;
        }
        let after = match offset {
            Some(offset) => {
                let (boot, seq) = offset.split_once('.')?;
                if boot != self.boot {
                    return None;
                }
                seq.parse::<u64>().ok()?
            }
            None => session.connected_seq.saturating_sub(1),
        };
        // Everything after `after` must still be in the log.
        let oldest = inner.packets.front().map_or(inner.next_seq, |p| p.seq);
        if after + 1 < oldest {
            return None;
        }
        let mut missed = Vec::new();
        for p in inner.packets.iter().filter(|p| p.seq > after) {
            let for_us = p.rooms.iter().any(|r| session.rooms.contains(r))
                && !p.except.contains(&session.sid);
            if for_us {
                missed.extend(p.frames.iter().cloned());
            }
        }
        Some((session, missed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::FrameKind;

    fn frame(s: &str) -> Frame {
        Frame::from_payload(s.as_bytes(), FrameKind::Text)
    }

    fn saved(rooms: &[&str], connected_seq: u64) -> SavedSession {
        SavedSession::new(
            "sid1".into(),
            "pid1".into(),
            rooms.iter().map(|r| Arc::from(*r)).collect(),
            None,
            Value::Null,
            connected_seq,
        )
    }

    #[test]
    fn replays_missed_packets_of_the_sessions_rooms() {
        let log = RecoveryLog::new(Duration::from_secs(60), 100, 1 << 20);
        let (s1, o1) = log.next_offset();
        log.record(s1, vec!["a".into()], Vec::new(), vec![frame("1")]);
        log.save(saved(&["a"], 1));
        let (s2, _) = log.next_offset();
        log.record(s2, vec!["a".into()], Vec::new(), vec![frame("2")]);
        let (s3, _) = log.next_offset();
        log.record(s3, vec!["b".into()], Vec::new(), vec![frame("3")]);
        let (session, missed) = log.restore("pid1", Some(&o1)).unwrap();
        assert_eq!(&*session.sid, "sid1");
        let texts: Vec<_> = missed.iter().map(|f| f.payload()).collect();
        assert_eq!(texts, vec![bytes::Bytes::from_static(b"2")]);
        assert!(log.restore("pid1", Some(&o1)).is_none(), "restores once");
    }

    #[test]
    fn without_offset_replays_from_connect() {
        let log = RecoveryLog::new(Duration::from_secs(60), 100, 1 << 20);
        let at_connect = log.position();
        log.save(saved(&["a"], at_connect));
        let (s, _) = log.next_offset();
        log.record(s, vec!["a".into()], Vec::new(), vec![frame("x")]);
        let (_, missed) = log.restore("pid1", None).unwrap();
        assert_eq!(missed.len(), 1);
    }

    #[test]
    fn recovery_is_all_or_nothing() {
        let log = RecoveryLog::new(Duration::from_secs(60), 2, 1 << 20);
        let (s, o) = log.next_offset();
        log.record(s, vec!["a".into()], Vec::new(), vec![frame("0")]);
        log.save(saved(&["a"], 1));
        for _ in 0..3 {
            let (s, _) = log.next_offset();
            log.record(s, vec!["a".into()], Vec::new(), vec![frame("n")]);
        }
        assert!(log.restore("pid1", Some(&o)).is_none());
    }

    #[test]
    fn foreign_offsets_are_refused() {
        let log = RecoveryLog::new(Duration::from_secs(60), 10, 1 << 20);
        log.save(saved(&["a"], 1));
        assert!(log.restore("pid1", Some("otherboot.1")).is_none());
        assert!(log.restore("nope", None).is_none());
    }

    #[test]
    fn the_log_is_bounded_in_bytes() {
        let log = RecoveryLog::new(Duration::from_secs(60), 10_000, 1 << 20);
        let (s0, o0) = log.next_offset();
        log.record(s0, vec!["a".into()], Vec::new(), vec![frame("first")]);
        log.save(saved(&["a"], 1));
        let big = "x".repeat(64 * 1024);
        for _ in 0..100 {
            let (s, _) = log.next_offset();
            log.record(s, vec!["a".into()], Vec::new(), vec![frame(&big)]);
            assert!(log.inner.lock().bytes <= 1 << 20);
        }
        let inner = log.inner.lock();
        assert!(
            inner.packets.len() < 20,
            "{} packets kept",
            inner.packets.len()
        );
        let sum: usize = inner.packets.iter().map(|p| p.bytes).sum();
        assert_eq!(sum, inner.bytes);
        drop(inner);
        assert!(
            log.restore("pid1", Some(&o0)).is_none(),
            "a client that missed dropped packets starts fresh"
        );
    }

    #[test]
    fn saved_sessions_are_bounded_in_bytes() {
        let log = RecoveryLog::new(Duration::from_secs(60), 100, 1 << 20);
        let big = Value::String("a".repeat(200 * 1024));
        for i in 0..50 {
            log.save(SavedSession::new(
                format!("sid{i}").into(),
                format!("pid{i}").into(),
                vec!["a".into()],
                None,
                big.clone(),
                1,
            ));
            assert!(log.inner.lock().session_bytes <= 1 << 20);
        }
        assert!(!log.is_pending("pid0"), "the oldest went");
        assert!(log.is_pending("pid49"), "the newest stays");
        let inner = log.inner.lock();
        let sum: usize = inner.sessions.values().map(|s| s.bytes).sum();
        assert_eq!(sum, inner.session_bytes);
        drop(inner);
        assert!(log.restore("pid49", None).is_some());
        let inner = log.inner.lock();
        let sum: usize = inner.sessions.values().map(|s| s.bytes).sum();
        assert_eq!(sum, inner.session_bytes);
    }
}
