//! `sb-load`: the Switchboard load generator.
//!
//! Speaks Socket.IO v5 over Engine.IO v4 WebSockets exactly as `socket.io-client` does, so the
//! same run measures the engine and any Socket.IO server that implements the wire contract
//! (DESIGN.md). One task per client, small buffers; its own CPU time is reported so that it
//! is visibly not the bottleneck.
//!
//! ```text
//! sb-load fanout  --addr 127.0.0.1:PORT --jwt-secret S --server-pid PID [--target NAME]
//! sb-load chat    ...
//! sb-load idle    ...
//! sb-load connect ...
//! ```
//! Each run prints one JSON object on stdout and a human-readable summary on stderr.

mod client;
mod pace;
mod scenarios;
mod stats;

use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1 room × N clients, one publisher as fast as its slowest receiver (and the acks) allow.
    Fanout,
    /// N clients in R rooms, one publisher per room at a fixed rate.
    Chat,
    /// N connected clients, each in its own room: server memory per connection.
    Idle,
    /// Handshakes per second (WebSocket + Socket.IO CONNECT with JWT), disconnecting each.
    Connect,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Chat => "chat",
            Scenario::Idle => "idle",
            Scenario::Connect => "connect",
        }
    }
}

/// What paces the fan-out publisher.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PaceBy {
    /// The slowest receiver, and the acks.
    Receivers,
    /// The acks alone.
    Acks,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "sb-load",
    about = "Socket.IO load generator for Switchboard benchmarks"
)]
pub struct Args {
    /// Which scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Server address (HOST:PORT); keep it on the loopback. A comma-separated list spreads
    /// the clients over several nodes of a cluster (client i on address i mod n; the first
    /// publisher on the first).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: String,
    /// HS256 secret the tokens are signed with.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET")]
    pub jwt_secret: String,
    /// The server's process id: its CPU time and RSS are read from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A label for the server under test, copied into the output.
    #[arg(long, default_value = "server")]
    pub target: String,
    /// Clients (default: fanout 1000, chat 2000, idle 5000, connect 50 concurrent).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Rooms (chat; default 200).
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Measured seconds (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Warm-up seconds of publishing before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Messages the fan-out publisher keeps in flight (see --pace).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// What bounds the fan-out publisher's window: `receivers` (messages some receiver has
    /// not seen yet, and unacked ones) or `acks` (unacked messages only: the server's pace,
    /// which lets a slow generator's receivers be dropped as slow consumers).
    #[arg(long, value_enum, default_value_t = PaceBy::Receivers)]
    pub pace: PaceBy,
    /// Messages per second per chat publisher.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Handshakes in flight while connecting clients.
    #[arg(long, default_value_t = 50)]
    pub connect_concurrency: usize,
    /// Longest wait for the last deliveries after publishing stops (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Seconds idle clients are held (and watched for disconnects) after the RSS sample.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
    /// Seconds the idle scenario waits after the last join before sampling the RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Generator worker threads (1 = a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// WebSocket read buffer per client, bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// Every client is the same user (no presence traffic while joining).
    #[arg(long)]
    pub same_user: bool,
    /// Another process whose CPU time over the measured window is reported (fanout, chat,
    /// connect) under `watched.NAME`: a second node, a Redis shard. Repeatable.
    #[arg(long, value_name = "NAME=PID", value_parser = parse_watch)]
    pub watch: Vec<(String, u32)>,
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse().map_err(|e| format!("pid {pid:?}: {e}"))?;
    Ok((name.to_owned(), pid))
}

impl Args {
    /// The address client `i` connects to.
    pub fn addr_for(&self, i: usize) -> &str {
        let addrs: Vec<&str> = self.addr.split(',').filter(|a| !a.is_empty()).collect();
        if addrs.is_empty() {
            return &self.addr;
        }
        addrs[i % addrs.len()]
    }

    pub fn seconds(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }
}

fn main() {
    let args = Args::parse();
    let loopback =
        |a: &str| a.starts_with("127.") || a.starts_with("localhost") || a.starts_with("[::1]");
    if !args.addr.split(',').all(loopback) {
        eprintln!(
            "sb-load: only loopback targets are allowed (got {})",
            args.addr
        );
        std::process::exit(2);
    }
    let nofile = stats::raise_nofile();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let result = runtime.block_on(scenarios::run(args.clone(), nofile));
    match result {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).expect("json"));
            // Don't wait for thousands of sockets to be torn down one by one.
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("sb-load {}: {e}", args.scenario.name());
            std::process::exit(1);
        }
    }
}
