//! Heap per idle connection (issue 21): the engine's live heap bytes per idle Socket.IO
//! client over WebSocket (connected with a JWT and joined to a room of its own, as `make
//! bench`'s idle scenario does), and per long-polling session between requests, counted by a
//! global allocator that tags every allocation made on the server's threads.
//!
//! The server runs on a runtime of its own whose threads are tagged; the clients (real
//! `tokio-tungstenite` WebSockets, raw HTTP for polling) run on the test's runtime and are
//! not counted. A first batch of connections absorbs one-time costs (lazy statics, tables'
//! first growth); the figure is the growth over a second batch, divided by its size.
//!
//! `IDLE_MEMORY_REPORT=1 cargo test -p switchboard --test idle_memory -- --nocapture` prints
//! the breakdown by allocation size (bench/README.md explains what each size is);
//! `IDLE_MEMORY_TRACE=512,768` also prints where the live allocations of those sizes (to
//! 16 bytes) were made, from a few of the measured connections; `IDLE_MEMORY_TRACE=one`
//! prints every allocation the first measured connection still holds, with its site.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard::{chat, Config, Engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::Ws;

/// Live heap bytes per idle WebSocket connection may not pass this (measures ~2,900: see
/// bench/README.md; the headroom absorbs tables growing within the measured batch).
const WS_BUDGET: usize = 3 * 1024 + 256;
/// Live heap bytes per long-polling session between requests (its keep-alive HTTP
/// connection included) may not pass this.
const POLLING_BUDGET: usize = 5 * 512;

/// The tests share the counters: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET: &str = "idle-memory-secret";
const WARMUP: usize = 100;
const MEASURED: usize = 300;

thread_local! {
    /// Set on the server runtime's threads: what they allocate is counted.
    static SERVER: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread records a backtrace (which allocates itself).
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

/// Whether allocations of the traced sizes are recorded now (the measured batch).
static TRACE_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Whether frees of recorded allocations are tracked (until the report).
static TRACK_FREES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Size classes to trace, from `IDLE_MEMORY_TRACE` (sizes in bytes, comma-separated).
static TRACE_CLASSES: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
/// Live traced allocations: address → (size, where it was made).
static TRACES: std::sync::Mutex<Vec<(usize, usize, String)>> = std::sync::Mutex::new(Vec::new());
/// Traces kept per size class.
const TRACES_PER_CLASS: usize = 3;

/// Records where a traced allocation was made (at most a few per size class).
fn trace(ptr: usize, size: usize) {
    let Some(classes) = TRACE_CLASSES.get() else {
        return;
    };
    let all = classes.is_empty();
    if (!all && !classes.contains(&class(size))) || TRACING.with(Cell::get) {
        return;
    }
    TRACING.with(|t| t.set(true));
    let seen = TRACES
        .lock()
        .map(|t| {
            t.iter()
                .filter(|(_, s, _)| class(*s) == class(size))
                .count()
        })
        .unwrap_or(usize::MAX);
    if all || seen < TRACES_PER_CLASS {
        let bt = std::backtrace::Backtrace::force_capture().to_string();
        // The allocating call, then the engine's own frames (`./src/`) above it.
        let locations: Vec<&str> = bt
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("at ") && !l.contains("/rustc/"))
            .filter(|l| !l.contains("idle_memory.rs"))
            .collect();
        let frames: Vec<&str> = locations
            .iter()
            .take(1)
            .chain(
                locations
                    .iter()
                    .skip(1)
                    .filter(|l| l.contains("./src/"))
                    .take(5),
            )
            .copied()
            .collect();
        if let Ok(mut t) = TRACES.lock() {
            t.push((ptr, size, frames.join("\n")));
        }
    }
    TRACING.with(|t| t.set(false));
}

fn untrace(ptr: usize) {
    if TRACING.with(Cell::get) {
        return;
    }
    TRACING.with(|t| t.set(true));
    if let Ok(mut t) = TRACES.lock() {
        t.retain(|(p, _, _)| *p != ptr);
    }
    TRACING.with(|t| t.set(false));
}

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live server allocations by size class: 16-byte steps up to 8 KiB, then one bucket.
const CLASSES: usize = 513;
static BY_SIZE: [AtomicIsize; CLASSES] = [const { AtomicIsize::new(0) }; CLASSES];

fn class(size: usize) -> usize {
    (size.div_ceil(16)).min(CLASSES - 1)
}

/// Prefixes every allocation with a header saying whether a server thread made it, so a
/// free on any thread undoes exactly what was counted.
struct Tagging;

fn padded(layout: Layout) -> Option<(Layout, usize)> {
    let offset = layout.align().max(16);
    let padded = Layout::from_size_align(layout.size().checked_add(offset)?, offset).ok()?;
    Some((padded, offset))
}

unsafe impl GlobalAlloc for Tagging {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((outer, offset)) = padded(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size (offset >= 16).
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        // What the tracing itself allocates is not the server's.
        let server = SERVER.try_with(Cell::get).unwrap_or(false)
            && !TRACING.try_with(Cell::get).unwrap_or(true);
        // SAFETY: the header lies within the block, aligned to 16.
        unsafe { base.write(server as u8) };
        if server {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            BY_SIZE[class(layout.size())].fetch_add(1, Ordering::Relaxed);
            if TRACE_ON.load(Ordering::Relaxed) {
                trace(base as usize, layout.size());
            }
        }
        // SAFETY: `offset` is within the block.
        unsafe { base.add(offset) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((outer, offset)) = padded(layout) else {
            return;
        };
        // SAFETY: `ptr` came from `alloc` with this layout: the block starts `offset` before.
        let base = unsafe { ptr.sub(offset) };
        // SAFETY: the header written by `alloc`.
        if unsafe { base.read() } == 1 {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            BY_SIZE[class(layout.size())].fetch_sub(1, Ordering::Relaxed);
            if TRACK_FREES.load(Ordering::Relaxed) {
                untrace(base as usize);
            }
        }
        // SAFETY: allocated by `System` with `outer`.
        unsafe { System.dealloc(base, outer) }
    }
}

#[global_allocator]
static ALLOCATOR: Tagging = Tagging;

struct Snapshot {
    live: isize,
    by_size: Vec<isize>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        live: LIVE.load(Ordering::Relaxed),
        by_size: BY_SIZE.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
    }
}

/// Heap bytes per connection between two snapshots; prints the size classes that grew by at
/// least half an allocation per connection when asked to.
fn per_connection(what: &str, a: &Snapshot, b: &Snapshot, n: usize) -> usize {
    let per = (b.live - a.live).max(0) as usize / n;
    if std::env::var_os("IDLE_MEMORY_REPORT").is_some() {
        println!("{what}: {per} live heap bytes per connection ({n} connections)");
        for (i, (x, y)) in a.by_size.iter().zip(&b.by_size).enumerate() {
            let grown = (y - x) as f64 / n as f64;
            if grown.abs() >= 0.5 {
                let size = if i == CLASSES - 1 {
                    format!(">{}", (CLASSES - 1) * 16)
                } else {
                    format!("{}..={}", (i * 16).saturating_sub(15), i * 16)
                };
                println!("  {size:>12} B: {grown:+.2} allocations per connection");
            }
        }
        TRACE_ON.store(false, Ordering::Relaxed);
        TRACK_FREES.store(false, Ordering::Relaxed);
        if let Ok(traces) = TRACES.lock() {
            for (_, size, frames) in traces.iter() {
                println!("  live {size} B allocation made at:\n{frames}");
            }
        }
    }
    per
}

/// Starts tracing the sizes `IDLE_MEMORY_TRACE` names (for the measured batch).
fn start_tracing() {
    if let Ok(sizes) = std::env::var("IDLE_MEMORY_TRACE") {
        TRACK_FREES.store(true, Ordering::Relaxed);
        let classes = sizes
            .split(',')
            .filter_map(|s| s.trim().parse::<usize>().ok())
            .map(class)
            .collect();
        let _ = TRACE_CLASSES.set(classes);
        TRACE_ON.store(true, Ordering::Relaxed);
    }
}

/// The engine on a runtime of its own, whose threads are counted.
fn server() -> (tokio::runtime::Runtime, Engine, std::net::SocketAddr) {
    server_with(|c| c)
}

/// [`server`] with settings changed.
fn server_with(
    change: impl FnOnce(Config) -> Config,
) -> (tokio::runtime::Runtime, Engine, std::net::SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| SERVER.with(|s| s.set(true)))
        .enable_all()
        .build()
        .unwrap();
    // What `switchboard serve --rate-limit 0` runs (the bench's engine), recovery included.
    let config = change(Config::default().jwt_secret(SECRET).rate_limit(0, 0));
    let builder = chat::install(Engine::builder(config), chat::Hooks::default()).unwrap();
    let engine = builder.build_on(runtime.handle().clone()).unwrap();
    let addr = engine.listen(([127, 0, 0, 1], 0).into()).unwrap().addr;
    (runtime, engine, addr)
}

fn token(user: usize) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": format!("idle-{user}"), "exp": jsonwebtoken::get_current_timestamp() + 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.next().await.expect("stream ended").expect("read failed") {
            Message::Text(t) if t.as_str() == "2" => ws.send(Message::text("3")).await.unwrap(),
            Message::Text(t) => return t.to_string(),
            _ => {}
        }
    }
}

/// A Socket.IO client over WebSocket, connected with a token and joined to a room of its own.
async fn idle_client(addr: std::net::SocketAddr, user: usize) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with('0'));
    ws.send(Message::text(format!(
        "40{{\"token\":\"{}\"}}",
        token(user)
    )))
    .await
    .unwrap();
    let connected = next_text(&mut ws).await;
    assert!(connected.starts_with("40"), "{connected}");
    ws.send(Message::text(format!("420[\"joinRoom\",\"idle-{user}\"]")))
        .await
        .unwrap();
    while !next_text(&mut ws).await.starts_with("430") {}
    ws
}

/// Joins `room` with ack id `ack` and waits for the ack.
async fn join(ws: &mut Ws, room: &str, ack: u32) {
    ws.send(Message::text(format!("42{ack}[\"joinRoom\",\"{room}\"]")))
        .await
        .unwrap();
    let want = format!("43{ack}");
    while !next_text(ws).await.starts_with(&want) {}
}

/// Lets the server's tasks finish what the last client started (acks written, buffers
/// released).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_connection_stays_under_its_heap_budget() {
    let _serial = SERIAL.lock().await;
    let (runtime, engine, addr) = server();
    let mut clients = Vec::new();
    for user in 0..WARMUP {
        clients.push(idle_client(addr, user).await);
    }
    settle().await;
    let before = snapshot();
    start_tracing();
    let one = std::env::var("IDLE_MEMORY_TRACE").is_ok_and(|v| v == "one");
    for user in WARMUP..WARMUP + MEASURED {
        clients.push(idle_client(addr, user).await);
        if one && user == WARMUP {
            settle().await;
            TRACE_ON.store(false, Ordering::Relaxed);
        }
    }
    settle().await;
    let after = snapshot();
    let per = per_connection("websocket", &before, &after, MEASURED);
    assert!(
        per <= WS_BUDGET,
        "an idle WebSocket connection holds {per} heap bytes, over the {WS_BUDGET} budget \
         (IDLE_MEMORY_REPORT=1 prints where they go)"
    );
    drop(clients);
    engine.shutdown(Duration::ZERO);
    runtime.shutdown_background();
}

/// Most heap one more room membership (a member of a room that exists) may cost.
const MEMBERSHIP_BUDGET: usize = 640;
/// Rooms each measured client joins besides its own.
const SHARED_ROOMS: usize = 4;

/// Rooms of a few members each (every join is announced to the room's members).
fn shared_room(user: usize, room: usize) -> String {
    format!("shared-{}-{room}", user % 50)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_membership_stays_under_its_heap_budget() {
    let _serial = SERIAL.lock().await;
    let (runtime, engine, addr) = server();
    let mut clients = Vec::new();
    for user in 0..WARMUP {
        let mut ws = idle_client(addr, user).await;
        for room in 0..SHARED_ROOMS {
            join(&mut ws, &shared_room(user, room), 1 + room as u32).await;
        }
        clients.push(ws);
    }
    for user in WARMUP..WARMUP + MEASURED {
        clients.push(idle_client(addr, user).await);
    }
    settle().await;
    let before = snapshot();
    start_tracing();
    for (user, ws) in clients.iter_mut().enumerate().skip(WARMUP) {
        for room in 0..SHARED_ROOMS {
            join(ws, &shared_room(user, room), 1 + room as u32).await;
        }
    }
    settle().await;
    let after = snapshot();
    let per = per_connection("membership", &before, &after, MEASURED * SHARED_ROOMS);
    assert!(
        per <= MEMBERSHIP_BUDGET,
        "a room membership holds {per} heap bytes, over the {MEMBERSHIP_BUDGET} budget"
    );
    drop(clients);
    engine.shutdown(Duration::ZERO);
    runtime.shutdown_background();
}

/// A raw HTTP/1.1 request; the answer's body.
async fn http(conn: &mut tokio::net::TcpStream, method: &str, target: &str, body: &str) -> String {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if rest.len() >= length {
                return rest[..length].to_owned();
            }
        }
    }
}

/// One request on a connection of its own (`Connection: close`): what stays is the session's,
/// not an idle keep-alive connection's (hyper keeps two 8 KiB buffers per connection).
async fn request(addr: std::net::SocketAddr, method: &str, target: &str, body: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    http(&mut conn, method, target, body).await
}

/// A Socket.IO client over long-polling, connected and joined, between two requests (no GET
/// pending, no connection open).
async fn polling_client(addr: std::net::SocketAddr, user: usize) {
    let base = "/socket.io/?EIO=4&transport=polling";
    let open = request(addr, "GET", base, "").await;
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let target = format!("{base}&sid={sid}");
    let connect = format!("40{{\"token\":\"{}\"}}", token(user));
    assert_eq!(request(addr, "POST", &target, &connect).await, "ok");
    assert!(request(addr, "GET", &target, "").await.starts_with("40"));
    let join = format!("420[\"joinRoom\",\"idle-{user}\"]");
    assert_eq!(request(addr, "POST", &target, &join).await, "ok");
    let mut got = String::new();
    while !got.contains("430") {
        got = request(addr, "GET", &target, "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_session_between_requests_stays_under_its_heap_budget() {
    let _serial = SERIAL.lock().await;
    let (runtime, engine, addr) = server();
    for user in 0..WARMUP {
        polling_client(addr, user).await;
    }
    settle().await;
    let before = snapshot();
    start_tracing();
    for user in WARMUP..WARMUP + MEASURED {
        polling_client(addr, user).await;
    }
    settle().await;
    let after = snapshot();
    let per = per_connection("polling", &before, &after, MEASURED);
    assert!(
        per <= POLLING_BUDGET,
        "a long-polling session between requests holds {per} heap bytes, over the \
         {POLLING_BUDGET} budget (IDLE_MEMORY_REPORT=1 prints where they go)"
    );
    engine.shutdown(Duration::ZERO);
    runtime.shutdown_background();
}

/// Heap per idle WebSocket connection of a server with `change`d settings, measured as
/// [`an_idle_websocket_connection_stays_under_its_heap_budget`] does, `wait` after the last
/// client connected.
async fn idle_heap(label: &str, change: impl FnOnce(Config) -> Config, wait: Duration) -> usize {
    let (runtime, engine, addr) = server_with(change);
    let mut clients = Vec::new();
    for user in 0..WARMUP {
        clients.push(idle_client(addr, user).await);
    }
    tokio::time::sleep(wait).await;
    settle().await;
    let before = snapshot();
    for user in WARMUP..WARMUP + MEASURED {
        clients.push(idle_client(addr, user).await);
    }
    tokio::time::sleep(wait).await;
    settle().await;
    let after = snapshot();
    let per = per_connection(label, &before, &after, MEASURED);
    drop(clients);
    engine.shutdown(Duration::ZERO);
    runtime.shutdown_background();
    per
}

/// An idle connection's outbound queue holds no buffer once its last write is done: the
/// same clients hold as much before the heartbeat's first visit (which would give a kept
/// buffer back: here the connect deadline, passed with the session established) as after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_holds_no_queue_buffer_after_its_writes() {
    let _serial = SERIAL.lock().await;
    let deadline = Duration::from_secs(1);
    let visited = idle_heap(
        "websocket, heartbeat visited",
        |c| c.connect_timeout(deadline),
        deadline,
    )
    .await;
    let unvisited = idle_heap("websocket, not visited yet", |c| c, deadline).await;
    // A kept buffer is four frames' room (160 bytes); what varies between runs is less.
    assert!(
        unvisited < visited + 96,
        "before the heartbeat's visit an idle connection holds {unvisited} heap bytes, \
         after it {visited}: the queue kept its buffer after the write"
    );
}
