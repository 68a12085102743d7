//! Small measuring tools: a log-linear latency histogram, a growable bitset, and readers for
//! this process's and the server's CPU time and memory. No dependencies beyond std.

use std::time::Duration;

/// Sub-buckets per power of two: values are kept within 1/32 (~3%) of their true value.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for every u64.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A latency histogram in microseconds, log-linear (HDR-like) with ~3% precision.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: Vec::new(),
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            v as usize
        } else {
            let e = 63 - v.leading_zeros(); // >= SUB_BITS
            let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
            ((e - SUB_BITS + 1) as u64 * SUB + sub) as usize
        }
    }

    /// The smallest value of a bucket's range.
    fn lowest(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            i
        } else {
            let e = i / SUB - 1 + SUB_BITS as u64;
            let sub = i % SUB;
            (1u64 << e) | (sub << (e - SUB_BITS as u64))
        }
    }

    /// The middle of a bucket's range (what percentiles report).
    fn middle(i: usize) -> u64 {
        let lo = Self::lowest(i);
        let hi = if i + 1 < BUCKETS {
            Self::lowest(i + 1)
        } else {
            u64::MAX
        };
        lo + (hi.saturating_sub(lo)) / 2
    }

    #[inline]
    pub fn record(&mut self, micros: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[Self::index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), in microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                return Self::middle(i).min(self.max);
            }
        }
        self.max
    }
}

/// A growable set of small integers (message sequence numbers).
#[derive(Default, Clone)]
pub struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    /// Sets `i`; returns whether it was already set.
    #[inline]
    pub fn insert(&mut self, i: u64) -> bool {
        let w = (i / 64) as usize;
        if w >= self.words.len() {
            self.words.resize((w + 1).max(self.words.len() * 2), 0);
        }
        let bit = 1u64 << (i % 64);
        let had = self.words[w] & bit != 0;
        self.words[w] |= bit;
        had
    }

    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// How many members of `self` are missing from `other`.
    pub fn missing_from(&self, other: &Bitset) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| (w & !other.words.get(i).copied().unwrap_or(0)).count_ones() as u64)
            .sum()
    }
}

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    rest: [i64; 14],
}

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
}

const RUSAGE_SELF: i32 = 0;
const RLIMIT_NOFILE: i32 = 7;

/// CPU time (user + system) this process used so far.
pub fn self_cpu() -> Duration {
    let mut u = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        rest: [0; 14],
    };
    // SAFETY: `u` is a valid, writable rusage of the platform's layout (LP64 Linux).
    let rc = unsafe { getrusage(RUSAGE_SELF, &mut u) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let micros = (u.utime.sec + u.stime.sec) * 1_000_000 + u.utime.usec + u.stime.usec;
    Duration::from_micros(micros.max(0) as u64)
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: plain libc calls on a valid struct.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.cur < r.max {
            let want = Rlimit {
                cur: r.max,
                max: r.max,
            };
            if setrlimit(RLIMIT_NOFILE, &want) == 0 {
                return r.max;
            }
        }
    }
    r.cur
}

/// CPU time (user + system, all threads, from /proc/PID/stat) of another process.
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?; // field 14
    let stime: u64 = fields.get(12)?.parse().ok()?; // field 15
                                                    // USER_HZ is 100 on every Linux ABI this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Write system calls (write, writev, sendmsg...) a process made so far (/proc/PID/io).
pub fn proc_write_calls(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let line = io.lines().find(|l| l.starts_with("syscw:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Busy CPU time of the whole machine (every core; /proc/stat, less idle and iowait).
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some(Duration::from_millis((total - idle) * 10))
}

/// Resident set size of a process in KiB (VmRSS from /proc/PID/status).
pub fn proc_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.04, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.04, "{p99}");
        assert_eq!(h.max(), 10_000);
        assert_eq!(h.quantile(1.0), 10_000);
    }

    #[test]
    fn histogram_index_is_monotonic() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7) {
            let i = Histogram::index(v);
            assert!(i >= last);
            assert!(Histogram::lowest(i) <= v);
            last = i;
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn bitset_missing() {
        let mut acked = Bitset::default();
        let mut got = Bitset::default();
        for i in 0..200 {
            acked.insert(i);
            if i != 7 && i != 150 {
                got.insert(i);
            }
        }
        assert_eq!(acked.missing_from(&got), 2);
        assert!(got.insert(3));
        assert_eq!(got.len(), 198);
    }
}
