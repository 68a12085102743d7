//! The engine's `tracing` events, handed to a JS logger (`new Engine({logger})`, Fastify's
//! `app.log`).
//!
//! A process has one global subscriber, so it is installed once, on the first `LogSink`, and
//! every engine's sink registers in one process-wide list. Events are routed by engine: one
//! logged on an engine's runtime threads or during its start-up carries that engine's number
//! ([`switchboard::bindings::log::current_engine`]) and goes only to the sink bound to it (`bind`);
//! one logged elsewhere (Node's thread calling into an engine) goes to every sink; a sink not
//! bound yet (while its engine starts) takes everything. Each sink's filter then decides.
//! An event is queued on the thread that emits it — never blocking it: a bounded
//! queue per sink, with what does not fit dropped and counted — and JS is woken once per
//! batch through a weak thread-safe function (it does not keep Node alive), then takes the
//! whole batch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError, RwLock};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use serde_json::Value;
use switchboard::bindings::log::{Directives, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::Notify;

/// Records a sink holds while JS has not taken them; more are dropped and counted.
const QUEUE_RECORDS: usize = 1024;

struct Sink {
    filter: Directives,
    /// The engine whose events it takes; 0 until bound.
    engine: AtomicU64,
    queue: Mutex<VecDeque<Record>>,
    /// Whether JS has been woken and has not taken the queue yet.
    woken: AtomicBool,
    dropped: AtomicU64,
    /// Wakes JS (Node's thread will call `take`); false when the wake-up was not queued.
    wake: Box<dyn Fn() -> bool + Send + Sync>,
}

static SINKS: RwLock<Vec<Arc<Sink>>> = RwLock::new(Vec::new());
static INSTALL: Once = Once::new();

impl Sink {
    /// An unbound sink with an empty queue.
    fn new(filter: Directives, wake: Box<dyn Fn() -> bool + Send + Sync>) -> Self {
        Sink {
            filter,
            engine: AtomicU64::new(0),
            queue: Mutex::new(VecDeque::new()),
            woken: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            wake,
        }
    }

    fn wants(&self, from: Option<u64>, meta: &Metadata<'_>) -> bool {
        let bound = self.engine.load(Ordering::Relaxed);
        let mine = match from {
            Some(engine) => bound == 0 || bound == engine,
            None => true,
        };
        mine && self.filter.enabled(meta)
    }

    fn push(&self, record: &Record) {
        let wake = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= QUEUE_RECORDS {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.push_back(record.clone());
            !self.woken.swap(true, Ordering::AcqRel)
        };
        // With Node's queue full the wake-up fails and the next event retries.
        if wake && !(self.wake)() {
            self.woken.store(false, Ordering::Release);
        }
    }

    /// The records waiting, and how many were dropped since the last call.
    fn take(&self) -> (Vec<Record>, u64) {
        let records = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            self.woken.store(false, Ordering::Release);
            queue.drain(..).collect()
        };
        (records, self.dropped.swap(0, Ordering::Relaxed))
    }
}

/// The layer of the global subscriber: every sink whose filter wants an event gets it.
struct SinksLayer;

fn sinks() -> std::sync::RwLockReadGuard<'static, Vec<Arc<Sink>>> {
    SINKS.read().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Subscriber> Layer<S> for SinksLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Sinks come and go: ask `enabled` each time rather than caching an answer.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        let from = switchboard::bindings::log::current_engine();
        meta.is_event() && sinks().iter().any(|s| s.wants(from, meta))
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let sinks = sinks();
        let mut record = None;
        let from = switchboard::bindings::log::current_engine();
        for sink in sinks.iter().filter(|s| s.wants(from, event.metadata())) {
            sink.push(record.get_or_insert_with(|| Record::from_event(event)));
        }
    }
}

/// One engine's events, on their way to its JS logger.
#[napi]
pub struct LogSink {
    sink: Option<Arc<Sink>>,
}

/// An engine log event.
#[napi(object)]
pub struct LogRecord {
    /// `trace`, `debug`, `info`, `warn` or `error` (pino's method names).
    pub level: String,
    /// The engine module that logged it (`switchboard::chat`, …).
    pub target: String,
    /// The message.
    pub message: String,
    /// The event's fields (`sid`, `room`, `reason`, `error`, …).
    pub fields: Value,
}

/// What `LogSink.take()` returns.
#[napi(object)]
pub struct LogBatch {
    /// The records, oldest first.
    pub records: Vec<LogRecord>,
    /// Records dropped since the last batch because JS did not keep up.
    pub dropped: u32,
}

#[napi]
impl LogSink {
    /// Starts receiving the engine's events that `filter` lets through (`RUST_LOG` syntax;
    /// none: `SWITCHBOARD_LOG`, `RUST_LOG`, else `switchboard=info`). `onReady()` is called
    /// on Node's thread when records wait; call `take()` then.
    #[napi(constructor)]
    pub fn new(filter: Option<String>, on_ready: Function<'_, (), ()>) -> napi::Result<Self> {
        let filter = Directives::from_option_or_env(filter.as_deref())
            .map_err(|e| napi::Error::from_reason(format!("invalid `logLevel`: {e}")))?;
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(SinksLayer);
            // Another library may have installed one already: then the engine's events go
            // there, and the sinks get nothing (documented on `logger`).
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let notify: Arc<Notify<()>> = crate::notify(&on_ready)?;
        // Non-blocking: an engine thread never waits for Node.
        let sink = Arc::new(Sink::new(
            filter,
            Box::new(move || {
                notify.call((), ThreadsafeFunctionCallMode::NonBlocking) == napi::Status::Ok
            }),
        ));
        SINKS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sink.clone());
        Ok(LogSink { sink: Some(sink) })
    }

    /// From now on, takes only the events of the engine `NativeEngine.logId()` names (and
    /// those logged outside any engine's threads).
    #[napi]
    pub fn bind(&self, engine: i64) {
        if let Some(sink) = &self.sink {
            sink.engine
                .store(u64::try_from(engine).unwrap_or(0), Ordering::Relaxed);
        }
    }

    /// The records waiting, and how many were dropped since the last call.
    #[napi]
    pub fn take(&self) -> LogBatch {
        let Some(sink) = &self.sink else {
            return LogBatch {
                records: Vec::new(),
                dropped: 0,
            };
        };
        let (records, dropped) = sink.take();
        LogBatch {
            records: records
                .into_iter()
                .map(|r| LogRecord {
                    level: r.level.to_owned(),
                    target: r.target,
                    message: r.message,
                    fields: Value::Object(r.fields),
                })
                .collect(),
            dropped: u32::try_from(dropped).unwrap_or(u32::MAX),
        }
    }

    /// Stops receiving events (idempotent).
    #[napi]
    pub fn close(&mut self) {
        if let Some(sink) = self.sink.take() {
            SINKS
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|s| !Arc::ptr_eq(s, &sink));
        }
    }
}

impl Drop for LogSink {
    /// An engine collected without `close()` stops taking events too.
    fn drop(&mut self) {
        self.close();
    }
}

/// Every setting of the engine's table, for `new Engine`'s option check: `[{node, kind,
/// aliases}]` (settings without a Node option left out).
#[napi]
pub fn setting_names() -> Vec<SettingName> {
    switchboard::bindings::settings::SETTINGS
        .iter()
        .filter_map(|s| {
            Some(SettingName {
                node: s.node?.to_owned(),
                kind: s.kind.as_str().to_owned(),
                aliases: s
                    .aliases
                    .iter()
                    .filter(|a| !a.contains('-') && !a.contains('_'))
                    .map(|a| (*a).to_owned())
                    .collect(),
            })
        })
        .collect()
}

/// A Node option of the settings table.
#[napi(object)]
pub struct SettingName {
    /// The option (camelCase).
    pub node: String,
    /// `millis`, `bytes`, `count`, `text`, `secret`, `path`, `textList` or `choice`.
    pub kind: String,
    /// Older spellings still accepted.
    pub aliases: Vec<String>,
}

/// The valid name nearest to `unknown`, if one is close (edit distance, ignoring case, `-`
/// and `_`).
#[napi]
pub fn suggest_name(unknown: String, valid: Vec<String>) -> Option<String> {
    switchboard::bindings::settings::suggest(&unknown, valid.iter().map(String::as_str))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn info() -> Directives {
        Directives::parse("info").unwrap_or_else(|e| panic!("{e}"))
    }

    fn record(n: usize) -> Record {
        Record {
            level: "info",
            target: "switchboard::test".into(),
            message: format!("event {n}"),
            fields: serde_json::Map::new(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_wakes_js_once_per_batch() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counted = wakes.clone();
        let sink = Sink::new(
            info(),
            Box::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                true
            }),
        );
        for n in 0..QUEUE_RECORDS + 500 {
            sink.push(&record(n));
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "one wake-up per batch");
        let (records, dropped) = sink.take();
        assert_eq!((records.len(), dropped), (QUEUE_RECORDS, 500));
        assert_eq!(records[0].message, "event 0", "the oldest are kept");
        assert_eq!(sink.take().1, 0, "the count restarts");
        sink.push(&record(0));
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            2,
            "taken: the next event wakes JS again"
        );
    }

    #[test]
    fn a_failed_wake_up_is_retried_by_the_next_event() {
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = tries.clone();
        let sink = Sink::new(
            info(),
            Box::new(move || counted.fetch_add(1, Ordering::SeqCst) > 0),
        );
        sink.push(&record(1));
        sink.push(&record(2));
        sink.push(&record(3));
        assert_eq!(
            tries.load(Ordering::SeqCst),
            2,
            "failed once, then woke and stopped"
        );
    }
}
