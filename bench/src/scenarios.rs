//! The four scenarios. Each returns one JSON report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Incoming};
use crate::pace::Pace;
use crate::stats::{self, Bitset, Histogram};
use crate::{Args, PaceBy, Scenario};

/// Mints an HS256 token for user `u<i>` valid for a day.
fn token(key: &EncodingKey, i: usize, same_user: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sub = if same_user {
        "bench".to_string()
    } else {
        format!("u{i}")
    };
    let claims =
        json!({ "sub": sub, "username": format!("user {sub}"), "iat": now, "exp": now + 86_400 });
    jsonwebtoken::encode(&Header::default(), &claims, key).expect("jwt")
}

/// A resource sample taken at the edges of the measured window.
struct Sample {
    at: Instant,
    gen_cpu: Duration,
    server_cpu: Option<Duration>,
    machine: Option<Duration>,
    server_writes: Option<u64>,
    /// CPU time of each `--watch` process (None once it has gone).
    watched: Vec<Option<Duration>>,
}

impl Sample {
    fn take(pid: Option<u32>, watch: &[(String, u32)]) -> Self {
        Sample {
            watched: watch.iter().map(|(_, p)| stats::proc_cpu(*p)).collect(),
            at: Instant::now(),
            gen_cpu: stats::self_cpu(),
            server_cpu: pid.and_then(stats::proc_cpu),
            machine: stats::machine_busy(),
            server_writes: pid.and_then(stats::proc_write_calls),
        }
    }
}

/// The generator's and the server's CPU use between two samples, per delivered message.
fn cpu_report(a: &Sample, b: &Sample, deliveries: u64, threads: usize) -> (Value, Value) {
    let wall = (b.at - a.at).as_secs_f64().max(1e-9);
    let gen = (b.gen_cpu - a.gen_cpu).as_secs_f64();
    let per_m = |cpu: f64| {
        if deliveries > 0 {
            cpu * 1e6 / deliveries as f64
        } else {
            0.0
        }
    };
    let generator = json!({
        "threads": threads,
        "cpu_s": round(gen, 3),
        "cpu_util": round(gen / wall, 3),
        "cpu_s_per_1m_deliveries": round(per_m(gen), 3),
    });
    let server = match (a.server_cpu, b.server_cpu) {
        (Some(x), Some(y)) => {
            let cpu = (y - x).as_secs_f64();
            json!({
                "cpu_s": round(cpu, 3),
                "cpu_util": round(cpu / wall, 3),
                "cpu_s_per_1m_deliveries": round(per_m(cpu), 3),
                "deliveries_per_core_s": if cpu > 0.0 { (deliveries as f64 / cpu).round() } else { 0.0 },
            })
        }
        _ => Value::Null,
    };
    let mut generator = generator;
    let mut server = server;
    if let (Some(x), Some(y), false) = (a.server_writes, b.server_writes, server.is_null()) {
        // Coalescing: how many deliveries (frames) one write system call carried.
        server["write_calls"] = json!(y - x);
        server["deliveries_per_write"] = json!(round(deliveries as f64 / (y - x).max(1) as f64, 2));
    }
    if let (Some(x), Some(y)) = (a.machine, b.machine) {
        // Busy time of every core: what the server and sb-load used, plus the rest (kernel
        // softirq work for loopback traffic, and anything else running on the machine).
        let machine = (y - x).as_secs_f64();
        let server_cpu = server["cpu_s"].as_f64().unwrap_or(0.0);
        generator["machine_cpu_util"] = json!(round(machine / wall, 3));
        generator["other_cpu_util"] =
            json!(round(((machine - gen - server_cpu) / wall).max(0.0), 3));
    }
    (generator, server)
}

/// The `--watch` processes' CPU between two samples: `{NAME: {cpu_s, cpu_util}}`.
fn watched_report(a: &Sample, b: &Sample, watch: &[(String, u32)]) -> Value {
    let wall = (b.at - a.at).as_secs_f64().max(1e-9);
    let mut out = serde_json::Map::new();
    for (i, (name, pid)) in watch.iter().enumerate() {
        let v = match (a.watched[i], b.watched[i]) {
            (Some(x), Some(y)) => {
                let cpu = y.saturating_sub(x).as_secs_f64();
                json!({ "pid": pid, "cpu_s": round(cpu, 3), "cpu_util": round(cpu / wall, 3) })
            }
            _ => json!({ "pid": pid, "error": "process not found" }),
        };
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

pub async fn run(args: Args, nofile: u64) -> Result<Value, String> {
    let needed = match args.scenario {
        Scenario::Connect => 0,
        _ => args.clients.unwrap_or(default_clients(args.scenario)) as u64 + 64,
    };
    if nofile > 0 && needed > nofile {
        return Err(format!(
            "{needed} file descriptors needed, the limit is {nofile} (ulimit -n)"
        ));
    }
    let mut report = match args.scenario {
        Scenario::Fanout | Scenario::Chat => messages(&args).await?,
        Scenario::Idle => idle(&args).await?,
        Scenario::Connect => connect(&args).await?,
    };
    report["scenario"] = json!(args.scenario.name());
    report["target"] = json!(args.target);
    Ok(report)
}

fn default_clients(s: Scenario) -> usize {
    match s {
        Scenario::Fanout => 1000,
        Scenario::Chat => 2000,
        Scenario::Idle => 5000,
        Scenario::Connect => 50,
    }
}

/// State every client task shares.
struct Shared {
    start: Instant,
    /// The measured window, in ns since `start` (u64::MAX until publishing starts).
    window_start: AtomicU64,
    window_end: AtomicU64,
    /// Benchmark messages delivered so far (any time).
    delivered: AtomicU64,
    /// Other events delivered (presence while joining...): setup is over when it settles.
    other: AtomicU64,
}

impl Shared {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// How a publisher paces itself.
#[derive(Clone, Copy)]
enum Pacing {
    /// As fast as acks allow with this many outstanding.
    Window(usize),
    /// A fixed period, starting after a phase offset.
    Rate { period: Duration, phase: Duration },
}

/// What one client saw.
#[derive(Default)]
struct MemberResult {
    room: usize,
    connected: bool,
    error: Option<String>,
    disconnected: bool,
    hist: Histogram,
    received: Bitset,
    in_window: u64,
    duplicates: u64,
    // Publishers only.
    publisher: bool,
    sent: u64,
    acked: Bitset,
    ack_errors: u64,
    /// Send time (ns) of each message, by sequence number.
    sent_at: Vec<u64>,
    /// Time from sending to the ack, for messages sent in the measured window.
    ack_hist: Histogram,
}

struct MemberPlan {
    addr: String,
    token: String,
    room_name: String,
    room: usize,
    pacing: Option<Pacing>,
    /// The fan-out room's slowest-receiver pacing (every member of the room shares it).
    pace: Option<Arc<Pace>>,
    read_buffer: usize,
}

/// One client: connect, join, then read (and, for a publisher, publish) until told to stop.
async fn member(
    plan: MemberPlan,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut go: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> MemberResult {
    let mut r = MemberResult {
        room: plan.room,
        publisher: plan.pacing.is_some(),
        ..Default::default()
    };
    let setup = async {
        let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
        let mut ws = client::connect(&plan.addr, &plan.token, plan.read_buffer)
            .await
            .map_err(|e| e.to_string())?;
        client::join(&mut ws, &plan.room_name)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(ws)
    };
    let mut ws = match setup.await {
        Ok(ws) => {
            r.connected = true;
            let _ = ready.send(Ok(()));
            ws
        }
        Err(e) => {
            r.error = Some(e.clone());
            let _ = ready.send(Err(e));
            if let (Some(p), false) = (&plan.pace, r.publisher) {
                p.receiver_gone();
            }
            return r;
        }
    };
    drop(ready);
    // Receivers report to the pacing; the publisher reads it.
    let (pace_rx, pace_tx) = match (&plan.pace, r.publisher) {
        (Some(p), false) => (Some(p.clone()), None),
        (Some(p), true) => (None, Some(p.clone())),
        (None, _) => (None, None),
    };

    let room_json = Value::from(plan.room_name.as_str()).to_string();
    let mut sending = false;
    let mut started = plan.pacing.is_none();
    let mut outstanding = 0usize;
    let mut ticker: Option<tokio::time::Interval> = None;
    // Created once and polled in place: no re-registration per received message.
    let go_fut = async move { go.wait_for(|g| *g).await.is_ok() };
    let stop_fut = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(go_fut, stop_fut);

    loop {
        tokio::select! {
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        r.disconnected = true;
                        break;
                    }
                    Some(Ok(_)) => continue,
                };
                match client::classify(text.as_str()) {
                    Incoming::Ping => {
                        if ws.send(Message::text("3")).await.is_err() {
                            r.disconnected = true;
                            break;
                        }
                    }
                    Incoming::Message { seq, sent_ns } => {
                        let now = shared.now_ns();
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                        let (ws_, we) = (
                            shared.window_start.load(Ordering::Relaxed),
                            shared.window_end.load(Ordering::Relaxed),
                        );
                        if now >= ws_ && now < we {
                            r.in_window += 1;
                        }
                        if sent_ns >= ws_ && sent_ns < we {
                            r.hist.record(now.saturating_sub(sent_ns) / 1000);
                        }
                        if r.received.insert(seq) {
                            r.duplicates += 1;
                        }
                        if let Some(p) = &pace_rx {
                            p.seen(seq);
                        }
                    }
                    Incoming::Ack { id, ok } => {
                        // Ack id 0 was joinRoom; message seq s went out with ack id s + 1.
                        if id >= 1 && r.publisher {
                            outstanding = outstanding.saturating_sub(1);
                            if ok {
                                r.acked.insert(id - 1);
                                if let Some(&at) = r.sent_at.get((id - 1) as usize) {
                                    let ws_ = shared.window_start.load(Ordering::Relaxed);
                                    let we = shared.window_end.load(Ordering::Relaxed);
                                    if at >= ws_ && at < we {
                                        r.ack_hist.record(shared.now_ns().saturating_sub(at) / 1000);
                                    }
                                }
                            } else {
                                r.ack_errors += 1;
                            }
                        }
                    }
                    Incoming::Other => {
                        shared.other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            g = &mut go_fut, if !started => {
                if !g {
                    break;
                }
                started = true;
                sending = true;
                if let Some(Pacing::Rate { period, phase }) = plan.pacing {
                    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    ticker = Some(t);
                }
            }
            _ = async { ticker.as_mut().expect("ticker").tick().await }, if sending && ticker.is_some() => {
                let now = shared.now_ns();
                if now >= shared.window_end.load(Ordering::Relaxed) {
                    sending = false;
                    ticker = None;
                } else {
                    let seq = r.sent;
                    let p = client::send_message_packet(seq + 1, &room_json, seq, now);
                    r.sent += 1;
                    r.sent_at.push(now);
                    outstanding += 1;
                    if ws.send(Message::text(p)).await.is_err() {
                        r.disconnected = true;
                        break;
                    }
                }
            }
            _ = async { pace_tx.as_ref().expect("pace").changed().await }, if sending && pace_tx.is_some() => {}
            _ = &mut stop_fut => break,
        }
        if sending {
            if let Some(Pacing::Window(window)) = plan.pacing {
                let now = shared.now_ns();
                // Unseen: messages from the first one some live receiver still misses.
                let unseen = |sent: u64| match &pace_tx {
                    Some(p) => sent - p.advance(sent),
                    None => 0,
                };
                if now >= shared.window_end.load(Ordering::Relaxed) {
                    sending = false;
                } else if outstanding < window && unseen(r.sent) < window as u64 {
                    while outstanding < window && unseen(r.sent) < window as u64 {
                        let seq = r.sent;
                        let at = shared.now_ns();
                        let p = client::send_message_packet(seq + 1, &room_json, seq, at);
                        r.sent += 1;
                        r.sent_at.push(at);
                        outstanding += 1;
                        if ws.feed(Message::text(p)).await.is_err() {
                            r.disconnected = true;
                            break;
                        }
                    }
                    if r.disconnected || ws.flush().await.is_err() {
                        r.disconnected = true;
                        break;
                    }
                }
            }
        }
    }
    if r.disconnected {
        if let Some(p) = &pace_rx {
            p.receiver_gone();
        }
    }
    // Close in the background, so the server is not left with half-open sockets.
    tokio::spawn(async move { drop(ws) });
    r
}

/// Starts `n` clients (client i in room i % rooms; the first `publishers` rooms' first
/// member publishes) and waits until every one has joined or failed.
#[allow(clippy::too_many_arguments)]
async fn start_members(
    args: &Args,
    n: usize,
    rooms: usize,
    room_name: impl Fn(usize) -> String,
    pacing: impl Fn(usize) -> Option<Pacing>,
    shared: &Arc<Shared>,
    go: &watch::Receiver<bool>,
    stop: &watch::Receiver<bool>,
    publishers_on: Option<&tokio::runtime::Handle>,
    pace: Option<&Arc<Pace>>,
) -> Result<
    (
        Vec<tokio::task::JoinHandle<MemberResult>>,
        Duration,
        usize,
        Option<String>,
    ),
    String,
> {
    let key = EncodingKey::from_secret(args.jwt_secret.as_bytes());
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let room = i % rooms;
        let plan = MemberPlan {
            addr: args.addr_for(i).to_owned(),
            token: token(&key, i, args.same_user),
            room_name: room_name(room),
            room,
            pacing: if i < rooms { pacing(room) } else { None },
            pace: pace.cloned(),
            read_buffer: args.read_buffer,
        };
        let publisher = plan.pacing.is_some();
        let task = member(
            plan,
            shared.clone(),
            gate.clone(),
            ready_tx.clone(),
            go.clone(),
            stop.clone(),
        );
        handles.push(match publishers_on {
            Some(rt) if publisher => rt.spawn(task),
            _ => tokio::spawn(task),
        });
    }
    drop(ready_tx);
    let (mut ok, mut failed, mut first_error) = (0usize, 0usize, None);
    let mut last_progress = Instant::now();
    while ok + failed < n {
        match tokio::time::timeout(Duration::from_secs(1), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => ok += 1,
            Ok(Some(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            eprintln!("  ... {ok}/{n} clients joined ({failed} failed)");
            last_progress = Instant::now();
        }
        if t0.elapsed() > Duration::from_secs(180) {
            return Err(format!("setup timed out: {ok}/{n} clients joined"));
        }
    }
    Ok((handles, t0.elapsed(), failed, first_error))
}

/// Waits until the counter stops moving for `quiet`, at most `max`.
async fn settle(counter: &AtomicU64, quiet: Duration, max: Duration) -> Duration {
    let t0 = Instant::now();
    let mut last = counter.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while t0.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    t0.elapsed()
}

fn ms(us: u64) -> f64 {
    round(us as f64 / 1000.0, 3)
}

/// fanout and chat: publishers send for warm-up + measured seconds, every member counts.
async fn messages(args: &Args) -> Result<Value, String> {
    let fanout = args.scenario == Scenario::Fanout;
    let n = args.clients.unwrap_or(default_clients(args.scenario));
    let rooms = if fanout {
        1
    } else {
        args.rooms.unwrap_or(200).clamp(1, n)
    };
    let shared = Arc::new(Shared {
        start: Instant::now(),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        delivered: AtomicU64::new(0),
        other: AtomicU64::new(0),
    });
    let (go_tx, go_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let rate = args.rate.max(0.01);
    let window = args.window.max(1);
    let pacing = |room: usize| {
        Some(if fanout {
            Pacing::Window(window)
        } else {
            let period = Duration::from_secs_f64(1.0 / rate);
            Pacing::Rate {
                period,
                phase: period.mul_f64(room as f64 / rooms as f64),
            }
        })
    };
    let name = |room: usize| {
        if fanout {
            "fanout".to_string()
        } else {
            format!("chat-{room}")
        }
    };
    // Fan-out: one publisher (client 0), n - 1 receivers.
    let pace = (fanout && args.pace == PaceBy::Receivers)
        .then(|| Arc::new(Pace::new(window, n.saturating_sub(1) as u32)));
    let rss_before = args.server_pid.and_then(stats::proc_rss_kb);
    // Publishers run on their own thread, so an ack never waits behind a round of the
    // receivers' reads (that would make the generator, not the server, set the pace).
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let publisher_thread = std::thread::Builder::new()
        .name("publishers".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("publisher runtime");
            let _ = handle_tx.send(rt.handle().clone());
            rt.block_on(async {
                let _ = done_rx.await;
            });
        })
        .map_err(|e| e.to_string())?;
    let publishers = handle_rx.recv().map_err(|e| e.to_string())?;
    let (handles, setup, failed, first_error) = start_members(
        args,
        n,
        rooms,
        name,
        pacing,
        &shared,
        &go_rx,
        &stop_rx,
        Some(&publishers),
        pace.as_ref(),
    )
    .await?;
    if failed == n {
        return Err(format!(
            "no client connected: {}",
            first_error.unwrap_or_default()
        ));
    }
    let settled = settle(
        &shared.other,
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "  {} clients joined in {:.1}s ({failed} failed), presence settled in {:.1}s; publishing",
        n - failed,
        setup.as_secs_f64(),
        settled.as_secs_f64()
    );

    // Publish: warm-up, then the measured window.
    let go_at = shared.now_ns();
    let w_start = go_at + args.warmup().as_nanos() as u64;
    let w_end = w_start + args.seconds().as_nanos() as u64;
    shared.window_start.store(w_start, Ordering::Relaxed);
    shared.window_end.store(w_end, Ordering::Relaxed);
    let _ = go_tx.send(true);
    tokio::time::sleep(args.warmup()).await;
    let a = Sample::take(args.server_pid, &args.watch);
    tokio::time::sleep(args.seconds()).await;
    let b = Sample::take(args.server_pid, &args.watch);
    let rss_during = args.server_pid.and_then(stats::proc_rss_kb);
    let drained = settle(
        &shared.delivered,
        Duration::from_secs(1),
        Duration::from_secs_f64(args.drain),
    )
    .await;
    let _ = stop_tx.send(true);

    let mut results = Vec::with_capacity(n);
    for h in handles {
        results.push(h.await.map_err(|e| e.to_string())?);
    }
    let _ = done_tx.send(());
    let _ = publisher_thread.join();
    // Per room: what its publisher got acked.
    let mut acked: Vec<Bitset> = vec![Bitset::default(); rooms];
    let (mut sent, mut acked_n, mut ack_errors) = (0u64, 0u64, 0u64);
    let mut ack_hist = Histogram::new();
    for r in results.iter().filter(|r| r.publisher) {
        ack_hist.merge(&r.ack_hist);
        sent += r.sent;
        acked_n += r.acked.len();
        ack_errors += r.ack_errors;
        acked[r.room] = r.acked.clone();
    }
    let mut hist = Histogram::new();
    let (mut in_window, mut lost, mut expected, mut received, mut dups, mut disconnects) =
        (0, 0, 0, 0, 0, 0);
    let mut members_lost = 0u64;
    for r in &results {
        if !r.connected {
            continue;
        }
        hist.merge(&r.hist);
        in_window += r.in_window;
        dups += r.duplicates;
        received += r.received.len();
        expected += acked[r.room].len();
        let missing = acked[r.room].missing_from(&r.received);
        lost += missing;
        members_lost += (missing > 0) as u64;
        disconnects += r.disconnected as u64;
    }
    let secs = args.seconds;
    // A run that lost receivers or messages measured the server without them: its figures
    // are not comparable, and the report says so before anything else.
    let mut invalid = Vec::new();
    if disconnects > 0 {
        invalid.push(format!(
            "{disconnects} of {} clients disconnected",
            n - failed
        ));
    }
    if lost > 0 {
        invalid.push(format!(
            "{lost} acked deliveries lost ({members_lost} members missing messages)"
        ));
    }
    if failed > 0 {
        invalid.push(format!("{failed} clients failed to connect"));
    }
    let invalid = (!invalid.is_empty()).then(|| invalid.join(", "));
    let (generator, server) = cpu_report(&a, &b, in_window, args.threads);
    let report = json!({
        "clients": n,
        "connected": n - failed,
        "connect_failures": failed,
        "first_error": first_error,
        "rooms": rooms,
        "seconds": secs,
        "warmup_seconds": args.warmup,
        "pacing": if fanout {
            json!({"window": window, "by": if pace.is_some() { "slowest receiver and acks" } else { "acks" }})
        } else {
            json!({"per_room_msgs_per_s": rate})
        },
        "valid": invalid.is_none(),
        "invalid_reason": invalid,
        "setup_s": round(setup.as_secs_f64(), 2),
        "drain_s": round(drained.as_secs_f64(), 2),
        "deliveries": in_window,
        "deliveries_per_s": (in_window as f64 / secs).round(),
        "latency_ms": { "p50": ms(hist.quantile(0.5)), "p99": ms(hist.quantile(0.99)), "max": ms(hist.max()), "samples": hist.count() },
        "published": sent,
        "acked": acked_n,
        "ack_errors": ack_errors,
        "ack_latency_ms": { "p50": ms(ack_hist.quantile(0.5)), "p99": ms(ack_hist.quantile(0.99)), "max": ms(ack_hist.max()) },
        "expected_deliveries": expected,
        "received_deliveries": received,
        "lost": lost,
        "members_missing_messages": members_lost,
        "duplicates": dups,
        "disconnects": disconnects,
        "generator": generator,
        "server": server,
        "watched": watched_report(&a, &b, &args.watch),
        "server_rss_kb": { "before": rss_before, "during": rss_during },
    });
    eprintln!(
        "{} [{}]: {:.0} deliveries/s, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms (ack p99 {:.2} ms), published {sent} acked {acked_n}, lost {lost}, disconnects {disconnects}; generator {:.3} cpu-s/1M deliveries (util {:.2}), server {}, other {:.2} cores busy",
        args.scenario.name(),
        args.target,
        in_window as f64 / secs,
        ms(hist.quantile(0.5)),
        ms(hist.quantile(0.99)),
        ms(hist.max()),
        ms(ack_hist.quantile(0.99)),
        report["generator"]["cpu_s_per_1m_deliveries"].as_f64().unwrap_or(0.0),
        report["generator"]["cpu_util"].as_f64().unwrap_or(0.0),
        if report["server"].is_null() { "cpu n/a".to_string() } else {
            format!("{:.3} cpu-s/1M deliveries (util {:.2})",
                report["server"]["cpu_s_per_1m_deliveries"].as_f64().unwrap_or(0.0),
                report["server"]["cpu_util"].as_f64().unwrap_or(0.0))
        },
        report["generator"]["other_cpu_util"].as_f64().unwrap_or(0.0),
    );
    if let Some(why) = &invalid {
        eprintln!(
            "  INVALID RUN: {why}: these figures do not measure the server with every client kept"
        );
    }
    Ok(report)
}

/// idle: N clients each in its own room; the server's RSS growth per connection.
async fn idle(args: &Args) -> Result<Value, String> {
    let n = args.clients.unwrap_or(default_clients(Scenario::Idle));
    let pid = args.server_pid.ok_or("idle needs --server-pid")?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        delivered: AtomicU64::new(0),
        other: AtomicU64::new(0),
    });
    let (_go_tx, go_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = stats::proc_rss_kb(pid).ok_or("cannot read the server's RSS")?;
    let (handles, setup, failed, first_error) = start_members(
        args,
        n,
        n,
        |room| format!("idle-{room}"),
        |_| None,
        &shared,
        &go_rx,
        &stop_rx,
        None,
        None,
    )
    .await?;
    let connected = n - failed;
    settle(
        &shared.other,
        Duration::from_millis(500),
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss_after = stats::proc_rss_kb(pid).ok_or("cannot read the server's RSS")?;
    let cpu_a = stats::proc_cpu(pid);
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let cpu_b = stats::proc_cpu(pid);
    let rss_held = stats::proc_rss_kb(pid).unwrap_or(0);
    let _ = stop_tx.send(true);
    let mut disconnects = 0u64;
    for h in handles {
        let r = h.await.map_err(|e| e.to_string())?;
        disconnects += (r.connected && r.disconnected) as u64;
    }
    let per_conn = if connected > 0 {
        (rss_after as f64 - rss_before as f64) / connected as f64
    } else {
        0.0
    };
    let idle_cpu = match (cpu_a, cpu_b) {
        (Some(a), Some(b)) => json!(round((b - a).as_secs_f64() / args.hold.max(1e-9), 4)),
        _ => Value::Null,
    };
    eprintln!(
        "idle [{}]: {connected} clients in {:.1}s, server RSS {} -> {} KiB: {:.2} KiB per connection, {disconnects} disconnects",
        args.target,
        setup.as_secs_f64(),
        rss_before,
        rss_after,
        per_conn
    );
    Ok(json!({
        "clients": n,
        "connected": connected,
        "connect_failures": failed,
        "first_error": first_error,
        "setup_s": round(setup.as_secs_f64(), 2),
        "server_rss_kb": { "before": rss_before, "after": rss_after, "held": rss_held },
        "rss_per_conn_kb": round(per_conn, 2),
        "server_idle_cpu_util": idle_cpu,
        "disconnects": disconnects,
    }))
}

/// connect: handshakes per second by `clients` concurrent workers for the measured time.
async fn connect(args: &Args) -> Result<Value, String> {
    let workers = args
        .clients
        .unwrap_or(default_clients(Scenario::Connect))
        .max(1);
    let key = EncodingKey::from_secret(args.jwt_secret.as_bytes());
    let tokens: Arc<Vec<String>> =
        Arc::new((0..1000).map(|i| token(&key, i, args.same_user)).collect());
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(parking_error());
    let closers = Arc::new(Semaphore::new(2000));
    // Warm-up: one handshake to make sure the server answers at all.
    let ws = client::connect(&args.addr, &tokens[0], args.read_buffer)
        .await
        .map_err(|e| format!("first handshake failed: {e}"))?;
    client::disconnect(ws).await;

    let a = Sample::take(args.server_pid, &args.watch);
    let deadline = Instant::now() + args.seconds();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (addr, tokens, ok, failed, first_error, closers) = (
            args.addr.clone(),
            tokens.clone(),
            ok.clone(),
            failed.clone(),
            first_error.clone(),
            closers.clone(),
        );
        let read_buffer = args.read_buffer;
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::new();
            let mut i = w;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client::connect(&addr, &tokens[i % tokens.len()], read_buffer).await {
                    Ok(ws) => {
                        hist.record(t.elapsed().as_micros() as u64);
                        ok.fetch_add(1, Ordering::Relaxed);
                        // Disconnect in the background; a bounded number at once.
                        if let Ok(permit) = closers.clone().acquire_owned().await {
                            tokio::spawn(async move {
                                client::disconnect(ws).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        {
                            first_error.lock().unwrap().get_or_insert(e.to_string());
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                i += workers;
            }
            hist
        }));
    }
    let mut hist = Histogram::new();
    for t in tasks {
        hist.merge(&t.await.map_err(|e| e.to_string())?);
    }
    let b = Sample::take(args.server_pid, &args.watch);
    let wall = (b.at - a.at).as_secs_f64();
    let n_ok = ok.load(Ordering::Relaxed);
    let n_failed = failed.load(Ordering::Relaxed);
    // Let the background disconnects finish before the server is stopped.
    let _ = tokio::time::timeout(Duration::from_secs(5), closers.acquire_many(2000)).await;
    let (generator, server) = cpu_report(&a, &b, n_ok, args.threads);
    let rate = n_ok as f64 / wall;
    eprintln!(
        "connect [{}]: {:.0} handshakes/s with {workers} in flight (p50 {:.2} ms, p99 {:.2} ms), {n_failed} failed",
        args.target,
        rate,
        ms(hist.quantile(0.5)),
        ms(hist.quantile(0.99)),
    );
    let first_error = first_error.lock().unwrap().clone();
    Ok(json!({
        "concurrency": workers,
        "seconds": round(wall, 2),
        "handshakes": n_ok,
        "handshakes_per_s": rate.round(),
        "failures": n_failed,
        "first_error": first_error,
        "latency_ms": { "p50": ms(hist.quantile(0.5)), "p99": ms(hist.quantile(0.99)), "max": ms(hist.max()) },
        "generator": rename_per_m(generator),
        "server": rename_per_m(server),
        "watched": watched_report(&a, &b, &args.watch),
    }))
}

fn parking_error() -> std::sync::Mutex<Option<String>> {
    std::sync::Mutex::new(None)
}

/// In the connect scenario the unit is a handshake, not a delivery.
fn rename_per_m(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        if let Some(x) = o.remove("cpu_s_per_1m_deliveries") {
            o.insert("cpu_s_per_1m_handshakes".into(), x);
        }
        o.remove("deliveries_per_write");
        if let Some(x) = o.remove("deliveries_per_core_s") {
            o.insert("handshakes_per_core_s".into(), x);
        }
    }
    v
}
