//! Throwaway Redis set-ups for the tests: one `redis-server`, or a Redis Cluster of three
//! masters, on free ports, stopped on drop. `None` when they cannot be run here (the tests
//! then print "skipped"). `REDIS_SERVER_BIN` and `REDIS_CLI_BIN` override the binaries.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server process, killed on drop.
pub(crate) struct Server(Child, pub(crate) u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

fn cli_bin() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into())
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port() -> Option<u16> {
    for _ in 0..50 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Some(port);
        }
    }
    None
}

fn spawn(port: u16, extra: &[&str]) -> Option<Server> {
    let child = Command::new(server_bin())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child, port);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Starts one redis-server.
pub(crate) fn redis_server() -> Option<Server> {
    spawn(free_port()?, &[])
}

/// Starts one redis-server on `port` (to bring one back after stopping it: a restart).
pub(crate) fn redis_server_on(port: u16) -> Option<Server> {
    spawn(port, &[])
}

/// A Redis Cluster of three masters (no replicas), and the working directory of their
/// `nodes.conf` files, removed on drop.
pub(crate) struct ClusterServers {
    servers: Vec<Server>,
    dir: std::path::PathBuf,
}

impl ClusterServers {
    /// The URL the nodes are given: `redis+cluster://` and every master.
    pub(crate) fn url(&self) -> String {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.1))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

impl Drop for ClusterServers {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts three cluster-enabled redis-servers, creates the cluster with `redis-cli --cluster
/// create` and waits for `cluster_state:ok` on every one.
pub(crate) fn redis_cluster() -> Option<ClusterServers> {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-redis-cluster-{}-{}",
        std::process::id(),
        crate::helpers::ids::new_id()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let mut cluster = ClusterServers {
        servers: Vec::new(),
        dir,
    };
    for _ in 0..3 {
        let port = free_port()?;
        let conf = cluster.dir.join(format!("nodes-{port}.conf"));
        let server = spawn(
            port,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                conf.to_str()?,
                "--cluster-node-timeout",
                "2000",
                "--dir",
                cluster.dir.to_str()?,
            ],
        )?;
        cluster.servers.push(server);
    }
    let addrs: Vec<String> = cluster
        .servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.1))
        .collect();
    let created = Command::new(cli_bin())
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .arg("--cluster-yes")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !created.success() {
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for server in &cluster.servers {
        loop {
            let info = Command::new(cli_bin())
                .args(["-p", &server.1.to_string(), "cluster", "info"])
                .output()
                .ok()?;
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(cluster)
}

/// A Redis set-up a test runs against, kept alive as long as the value.
pub(crate) enum Setup {
    /// One redis-server.
    Single(Server),
    /// A three-master Redis Cluster.
    Cluster(ClusterServers),
}

impl Setup {
    /// The Redis URL of the set-up.
    pub(crate) fn url(&self) -> String {
        match self {
            Setup::Single(s) => format!("redis://127.0.0.1:{}", s.1),
            Setup::Cluster(c) => c.url(),
        }
    }
}

/// Both set-ups, each when it can be run here (a message says which are skipped).
pub(crate) fn redis_setups() -> Vec<Setup> {
    let mut setups = Vec::new();
    match redis_server() {
        Some(s) => setups.push(Setup::Single(s)),
        None => eprintln!("redis-server cannot be run here: skipped"),
    }
    match redis_cluster() {
        Some(c) => setups.push(Setup::Cluster(c)),
        None => eprintln!("a Redis Cluster cannot be run here: skipped"),
    }
    setups
}
