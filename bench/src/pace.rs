//! Fan-out pacing by the slowest receiver.
//!
//! An ack only says that the server has queued a broadcast, not that anyone got it: a
//! publisher paced by acks runs at the server's pace, and when the generator's receivers fall
//! behind, every receiver's queue in the server grows until the server drops it as a slow
//! consumer (the engine does at `outbound_queue_frames`). Then the run measures nothing.
//!
//! Here the publisher keeps at most `window` messages in flight counted from the first one
//! some live receiver has not seen yet. Each receiver bumps its message's slot in a ring of
//! counters; the publisher retires a sequence number once its count reaches the number of
//! live receivers, and the receiver that completes a slot wakes it. Per delivery: one relaxed
//! load and one atomic add, no lock, no allocation.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Shared by the fan-out room's publisher and its receivers.
pub struct Pace {
    /// Receivers that have seen sequence number `s`, at `s & mask`.
    ring: Box<[AtomicU32]>,
    mask: u64,
    /// Receivers still connected (a dropped one no longer holds the publisher back; the run
    /// reports it as a disconnect and its lost deliveries).
    receivers: AtomicU32,
    /// Every sequence number below this one has been seen by every live receiver.
    done: AtomicU64,
    /// Wakes the publisher when a slot completes or a receiver leaves.
    wake: Notify,
}

impl Pace {
    /// Pacing for `receivers` receivers (the publisher excluded) and at most `window`
    /// messages in flight.
    pub fn new(window: usize, receivers: u32) -> Self {
        // Larger than the window, so a slot is retired (and reset) before it is reused.
        let len = (window.max(1) * 2).next_power_of_two();
        Pace {
            ring: (0..len).map(|_| AtomicU32::new(0)).collect(),
            mask: len as u64 - 1,
            receivers: AtomicU32::new(receivers),
            done: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// A receiver got message `seq`.
    #[inline]
    pub fn seen(&self, seq: u64) {
        let done = self.done.load(Ordering::Acquire);
        // Already retired (a duplicate or a late copy) or not from this run's window: its
        // slot may belong to a newer message now.
        if seq < done || seq - done > self.mask {
            return;
        }
        let n = self.ring[(seq & self.mask) as usize].fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.receivers.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    /// A receiver's connection ended (or never got going).
    pub fn receiver_gone(&self) {
        self.receivers.fetch_sub(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Retires every message below `sent` that every live receiver has seen; returns the
    /// first one some receiver still misses. Called by the publisher only.
    pub fn advance(&self, sent: u64) -> u64 {
        let mut done = self.done.load(Ordering::Acquire);
        let live = self.receivers.load(Ordering::Acquire);
        while done < sent {
            let slot = &self.ring[(done & self.mask) as usize];
            if slot.load(Ordering::Acquire) < live {
                break;
            }
            slot.store(0, Ordering::Release);
            done += 1;
        }
        self.done.store(done, Ordering::Release);
        done
    }

    /// Resolves when a slot may have completed or a receiver left.
    pub async fn changed(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_slowest_receiver() {
        let p = Pace::new(4, 3);
        // Messages 0..4 sent; receivers a and b saw 0..3, c only 0.
        for s in 0..3 {
            p.seen(s);
            p.seen(s);
        }
        p.seen(0);
        assert_eq!(p.advance(4), 1, "c has not seen 1");
        p.seen(1);
        p.seen(2);
        assert_eq!(p.advance(4), 3, "nobody has seen 3");
        // c drops out: a and b are the live receivers now.
        p.seen(3);
        p.seen(3);
        assert_eq!(p.advance(4), 3);
        p.receiver_gone();
        assert_eq!(p.advance(4), 4);
    }

    #[test]
    fn slots_are_reused_and_stale_copies_ignored() {
        let p = Pace::new(2, 1); // a ring of 4
        for s in 0..100u64 {
            p.seen(s);
            assert_eq!(p.advance(s + 1), s + 1);
            // A late duplicate of an already retired message does not count for s + 4.
            p.seen(s);
        }
        assert_eq!(p.advance(101), 100, "100 is not seen yet");
        // A sequence number far ahead of the window is ignored too.
        p.seen(1_000);
        assert_eq!(p.advance(101), 100);
    }

    #[test]
    fn completing_a_slot_wakes_the_publisher() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let p = std::sync::Arc::new(Pace::new(4, 2));
            let q = p.clone();
            let waiter = tokio::spawn(async move {
                q.changed().await;
                q.advance(1)
            });
            tokio::task::yield_now().await;
            p.seen(0);
            p.seen(0);
            let done = tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
                .await
                .expect("woken")
                .expect("task");
            assert_eq!(done, 1);
        });
    }
}
