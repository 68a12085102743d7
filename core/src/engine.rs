//! The engine: its runtime, its servers and its listeners; stopping it is `shutdown.rs`'s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::Error;
use crate::hub::users::{UserConnections, UserIndex};
use crate::metrics::Metrics;
use crate::socketio::cluster::Exchange;
use crate::socketio::{ConnState, Namespace, NamespaceBuilder, SocketIo};
use crate::transport::http::{HttpApp, HttpService, WebSocketService};
use crate::transport::tls::{TlsAcceptor, TlsSource};
use crate::transport::{EioServer, SessionHandler};

mod shutdown;

/// A broadcast a host asked for, waiting its turn.
pub(crate) struct HostEmit {
    pub(crate) rooms: Vec<String>,
    pub(crate) except: Vec<String>,
    pub(crate) event: String,
    pub(crate) data: serde_json::Value,
}

/// The queue of an engine's host broadcasts: one task sends them in the order they came, so
/// two `to(room).emit()` calls in a row reach a client in that order (a task each would race
/// on the runtime's workers). Unbounded: the host is trusted, and each call already holds
/// its data; the task ends when the engine is dropped.
pub(crate) type HostEmitLane = tokio::sync::mpsc::UnboundedSender<HostEmit>;

/// Runs once with the built engine (see [`EngineBuilder::on_start`]).
type StartHook = Box<dyn FnOnce(&Engine) + Send>;

/// Sets up an [`Engine`]: its namespaces and handlers, then where it runs.
pub struct EngineBuilder {
    config: Config,
    namespaces: Vec<(String, NamespaceBuilder)>,
    raw: Vec<(String, Arc<dyn SessionHandler<ConnState>>)>,
    activity: Option<crate::transport::ActivityHook>,
    services: Vec<(String, Arc<dyn WebSocketService>)>,
    http_services: Vec<(String, Arc<dyn HttpService>)>,
    on_start: Vec<StartHook>,
    metrics: Arc<Metrics>,
    /// Made with the builder so that features installing themselves share it; a bad
    /// `redis_url` stops [`EngineBuilder::build`] (with `cluster_error`).
    cluster: Arc<Cluster>,
    cluster_error: Option<Error>,
    /// Every registry of user connections: features register theirs when they install.
    users: Arc<UserIndex>,
}

impl EngineBuilder {
    /// Adds (or extends) a namespace.
    pub fn namespace(
        mut self,
        name: &str,
        setup: impl FnOnce(NamespaceBuilder) -> NamespaceBuilder,
    ) -> Self {
        let i = match self.namespaces.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.namespaces
                    .push((name.to_owned(), NamespaceBuilder::default()));
                self.namespaces.len() - 1
            }
        };
        let (n, b) = self.namespaces.remove(i);
        self.namespaces.insert(i, (n, setup(b)));
        self
    }

    /// Calls `f(true)` when the engine gets its first connection and `f(false)` when its last
    /// one closes (hosts use it to keep their process alive while clients are connected).
    pub fn on_activity(mut self, f: impl Fn(bool) + Send + Sync + 'static) -> Self {
        self.activity = Some(Arc::new(f));
        self
    }

    /// Serves raw Engine.IO (no Socket.IO) at `path` with this handler. Its sessions share
    /// the front door with Socket.IO's, so they carry (and the handler ignores) a
    /// [`ConnState`]: write the handler for any `D` (`impl<D> SessionHandler<D> for …`).
    #[doc(hidden)]
    pub fn engineio(mut self, path: &str, handler: Arc<dyn SessionHandler<ConnState>>) -> Self {
        self.raw.push((path.to_owned(), handler));
        self
    }

    /// Serves WebSocket upgrades for paths starting with `prefix` (e.g. `/yjs/`) with
    /// `service`, before the Engine.IO mounts (see [`crate::yjs::install`]).
    #[doc(hidden)]
    pub fn websocket_service(mut self, prefix: &str, service: Arc<dyn WebSocketService>) -> Self {
        self.services.push((prefix.to_owned(), service));
        self
    }

    /// Serves plain HTTP requests for paths starting with `prefix` (e.g. `/api/`) with
    /// `service`, before the Engine.IO mounts.
    pub(crate) fn http_service(mut self, prefix: &str, service: Arc<dyn HttpService>) -> Self {
        self.http_services.push((prefix.to_owned(), service));
        self
    }

    /// Runs `f` with the engine once it is built (to hand parts of it to long-lived state).
    pub fn on_start(mut self, f: impl FnOnce(&Engine) + Send + 'static) -> Self {
        self.on_start.push(Box::new(f));
        self
    }

    /// The configuration being built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The cluster the engine will be a node of (a single node without `redis_url`):
    /// features take their broker and stores from it when they install.
    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Every connection of a user, across transports: a feature serving connections that
    /// belong to users registers its registry here when it installs, so that the chat's
    /// `disconnect_user` (the host's, the server API's, another node's) reaches them;
    /// Socket.IO's is registered by the engine.
    pub(crate) fn users(&self) -> &Arc<UserIndex> {
        &self.users
    }

    /// Starts the engine on a runtime of its own (`config.worker_threads` workers).
    pub fn build(self) -> Result<Engine, Error> {
        // Checked before the runtime is made: it would panic on 0 worker threads.
        self.config.validate()?;
        let log_id = crate::log::new_engine_id();
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        rt.enable_all()
            .thread_name("switchboard")
            .on_thread_start(move || {
                block_sigpipe();
                // So that a binding's logger gets this engine's events, not another's.
                crate::log::tag_thread(log_id);
            });
        if let Some(n) = self.config.worker_threads {
            rt.worker_threads(n);
        }
        let runtime = rt.build().map_err(Error::Runtime)?;
        let handle = runtime.handle().clone();
        self.finish(handle, Some(runtime), log_id)
    }

    /// Starts the engine on the caller's runtime.
    pub fn build_on(self, handle: Handle) -> Result<Engine, Error> {
        self.finish(handle, None, crate::log::new_engine_id())
    }

    fn finish(
        self,
        handle: Handle,
        runtime: Option<Runtime>,
        log_id: u64,
    ) -> Result<Engine, Error> {
        // Start-up's own events (the CORS warning) are this engine's too.
        let _tag = crate::log::tag_scope(log_id);
        // The setters only store values: every setting is checked here, the same for every
        // binding (`build` has checked already; `build_on` has not).
        self.config.validate()?;
        if let Some(e) = self.cluster_error {
            return Err(e);
        }
        // Checked before anything starts: a bad certificate or key stops start-up.
        let tls = match &self.config.tls {
            Some(source) => Some(Arc::new(TlsAcceptor::new(source.clone())?)),
            None => None,
        };
        let config = Arc::new(self.config);
        let (metrics, cluster) = (self.metrics, self.cluster);
        if config.cors_origins.is_empty() {
            // The development default: fine on a laptop, not what production should run.
            // Said once start-up can no longer fail, so that a refused start says one thing.
            tracing::warn!(
                "no CORS origins configured: pages of any origin may connect and read answers \
                 (without credentials); set cors_origins (--cors-origin) to the site's origin \
                 in production"
            );
        }
        // Socket.IO's requests to other nodes and their replies, for every namespace.
        let exchange = Exchange::new(cluster.clone());
        let mut namespaces = HashMap::new();
        for (name, builder) in self.namespaces {
            let ns = builder.build(&name, &config, metrics.clone(), exchange.clone());
            namespaces.insert(name.clone(), ns);
        }
        let io = SocketIo::new(namespaces, crate::socketio::Limits::from_config(&config));
        let sockets: Arc<dyn UserConnections> = io.clone();
        self.users.register(Arc::downgrade(&sockets));
        exchange.serve(&io);
        let sio_server = EioServer::new(config.clone(), metrics.clone(), io.clone());
        if let Some(hook) = self.activity {
            sio_server.set_activity_hook(hook);
        }
        let mut mounts = vec![(config.path.clone(), sio_server.clone())];
        let mut raw_servers = Vec::new();
        for (path, handler) in self.raw {
            let server = EioServer::new(config.clone(), metrics.clone(), handler);
            raw_servers.push(server.clone());
            mounts.push((path, server));
        }
        for (_, service) in &self.services {
            service.start(&handle);
        }
        let http = HttpApp::with_services(
            config.clone(),
            metrics.clone(),
            mounts,
            self.services,
            self.http_services,
        );
        if cluster.has_peers() {
            // Not ready once cut off from Redis for longer than a heartbeat: a node that
            // cannot reach the others delivers to its own clients only.
            let cluster = Arc::downgrade(&cluster);
            let heartbeat = config.cluster_heartbeat;
            http.set_readiness(Box::new(move || {
                let down = cluster.upgrade()?.broker().disconnected_for()?;
                (down > heartbeat)
                    .then(|| format!("disconnected from redis for {} s", down.as_secs()))
            }));
        }
        let engine = Engine {
            inner: Arc::new(EngineInner {
                config,
                metrics,
                io,
                sio_server,
                raw_servers,
                http,
                handle,
                listeners: Mutex::new(Vec::new()),
                cluster,
                tls,
                other_tls: Mutex::new(Vec::new()),
                host_emits: std::sync::OnceLock::new(),
            }),
            runtime: Arc::new(Mutex::new(runtime)),
            log_id,
        };
        for f in self.on_start {
            f(&engine);
        }
        // After the hooks: they add the cluster's sinks.
        engine.cluster().broker().start(engine.handle());
        Ok(engine)
    }
}

/// Writing to a connection the peer reset raises SIGPIPE, whose default action kills the
/// process. Rust programs ignore it from `main`, but a C or C++ host usually does not, and
/// vectored writes (`writev`) cannot ask for `MSG_NOSIGNAL`: blocked in the engine's own
/// threads, the write fails with `EPIPE` instead and only that connection ends. The host's
/// own signal handling is left alone.
fn block_sigpipe() {
    #[cfg(unix)]
    // SAFETY: builds a signal set on the stack and changes the calling thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

struct EngineInner {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    io: Arc<SocketIo>,
    sio_server: Arc<EioServer<ConnState>>,
    raw_servers: Vec<Arc<EioServer<ConnState>>>,
    http: Arc<HttpApp<ConnState>>,
    handle: Handle,
    listeners: Mutex<Vec<oneshot::Sender<()>>>,
    cluster: Arc<Cluster>,
    /// The configuration's certificate, served by [`Engine::listen`].
    tls: Option<Arc<TlsAcceptor>>,
    /// Certificates given to [`Engine::listen_tls`], kept for [`Engine::reload_tls`].
    other_tls: Mutex<Vec<Arc<TlsAcceptor>>>,
    /// The host's broadcasts, in the order it made them (see [`Engine::spawn_emit_to_rooms`]).
    pub(crate) host_emits: std::sync::OnceLock<HostEmitLane>,
}

/// A listener the engine serves, as [`Engine::listen`] reports it. Displays as its URL
/// (`http://127.0.0.1:3000`, `https://[::1]:8443`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listening {
    /// The bound address (with the port picked when port 0 was asked for).
    pub addr: SocketAddr,
    /// Whether connections speak TLS (`https://`, `wss://`).
    pub tls: bool,
}

impl Listening {
    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

impl std::fmt::Display for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.addr)
    }
}

/// A running engine. Cheap to clone; [`Engine::shutdown`] stops it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
    runtime: Arc<Mutex<Option<Runtime>>>,
    log_id: u64,
}

impl Engine {
    /// This engine's number in [`crate::log::current_engine`]: events logged on its
    /// runtime's threads (and during its start-up) carry it, so a binding can route them to
    /// this engine's logger.
    pub fn log_id(&self) -> u64 {
        self.log_id
    }

    /// Starts building an engine with this configuration.
    pub fn builder(config: Config) -> EngineBuilder {
        let metrics = Arc::new(Metrics::default());
        let (cluster, cluster_error) = match crate::cluster::from_config(&config, metrics.clone()) {
            Ok(cluster) => (cluster, None),
            Err(e) => (Cluster::single_node(), Some(e)),
        };
        EngineBuilder {
            metrics,
            cluster: Arc::new(cluster),
            cluster_error,
            users: Arc::default(),
            config,
            namespaces: Vec::new(),
            raw: Vec::new(),
            activity: None,
            services: Vec::new(),
            http_services: Vec::new(),
            on_start: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The engine's metrics.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The runtime the engine runs on.
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }

    /// The Socket.IO server and the Engine.IO sessions behind it: the plain-WebSocket
    /// endpoint opens its connections there and speaks to Socket.IO through it, so they count,
    /// shut down and recover like Socket.IO's.
    pub(crate) fn socketio_parts(&self) -> (&Arc<SocketIo>, &Arc<EioServer<ConnState>>) {
        (&self.inner.io, &self.inner.sio_server)
    }

    /// A namespace by name.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.inner.io.namespace(name).cloned()
    }

    /// The HTTP front door, for hosts that accept connections themselves.
    #[doc(hidden)]
    pub fn http(&self) -> &Arc<HttpApp<ConnState>> {
        &self.inner.http
    }

    /// Binds `addr` and serves on it until shutdown, with TLS when the configuration has a
    /// certificate ([`Config::tls_files`]); returns where (the bound port is useful with port
    /// 0) and the scheme. Callable from inside or outside the engine's runtime.
    pub fn listen(&self, addr: SocketAddr) -> Result<Listening, Error> {
        self.bind(addr, self.inner.tls.clone())
    }

    /// Like [`Engine::listen`], with this certificate and key whatever the configuration says
    /// (Node's `engine.listen({ tls })`). A certificate or key that cannot be served is an
    /// error naming it, and nothing is bound.
    pub fn listen_tls(&self, addr: SocketAddr, source: TlsSource) -> Result<Listening, Error> {
        let tls = Arc::new(TlsAcceptor::new(source)?);
        let listening = self.bind(addr, Some(tls.clone()))?;
        self.inner.other_tls.lock().push(tls);
        Ok(listening)
    }

    /// Reads every certificate and key again (renewed files) and serves new TLS connections
    /// with them; open connections are not disturbed. When one fails to load it keeps its old
    /// certificate and the first error is returned. Without TLS there is nothing to do.
    pub fn reload_tls(&self) -> Result<(), Error> {
        let mut acceptors: Vec<Arc<TlsAcceptor>> = self.inner.other_tls.lock().clone();
        acceptors.extend(self.inner.tls.clone());
        let mut first_error = None;
        for acceptor in acceptors {
            if let Err(e) = acceptor.reload() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), |e| Err(Error::Tls(e)))
    }

    fn bind(&self, addr: SocketAddr, tls: Option<Arc<TlsAcceptor>>) -> Result<Listening, Error> {
        // Called from the host's thread: its log event (`listening`) is this engine's.
        let _tag = crate::log::tag_scope(self.log_id);
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let _enter = self.inner.handle.enter();
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| Error::Bind { addr, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        self.inner.listeners.lock().push(tx);
        let http = self.inner.http.clone();
        let listening = Listening {
            addr: local,
            tls: tls.is_some(),
        };
        self.inner.handle.spawn(async move {
            crate::transport::http::serve(listener, http, tls, async {
                let _ = rx.await;
            })
            .await;
        });
        tracing::info!(%listening, "listening");
        Ok(listening)
    }

    /// The cluster this engine is a node of (a single node without `redis_url`).
    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.inner.cluster
    }

    /// Emits `event` with `data` to every socket in `room` of the `/` namespace (encoded
    /// once). Returns the number of sockets it was queued for.
    pub fn emit_to_room<T: serde::Serialize + ?Sized>(
        &self,
        room: &str,
        event: &str,
        data: &T,
    ) -> usize {
        self.namespace("/")
            .map_or(0, |ns| ns.to(room).emit(event, data))
    }

    /// Emits `event` to every connection of a user (its personal room `user:<id>`).
    pub fn emit_to_user<T: serde::Serialize + ?Sized>(
        &self,
        user_id: &str,
        event: &str,
        data: &T,
    ) -> usize {
        self.emit_to_room(&crate::hub::personal_room(user_id), event, data)
    }

    /// Like [`Engine::emit_to_room`], but the fan-out runs on the engine's runtime: the
    /// calling (host) thread only hands the data over. Returns the room's size now.
    pub fn spawn_emit_to_room(
        &self,
        room: String,
        event: String,
        data: serde_json::Value,
    ) -> usize {
        let members = self.namespace("/").map_or(0, |ns| ns.room_size(&room));
        self.spawn_emit_to_rooms(vec![room], Vec::new(), event, data);
        members
    }

    /// [`Engine::emit_to_rooms`] off the caller's thread (a host's event loop must not do the
    /// encoding and queueing), in call order: broadcasts from one caller reach each client in
    /// the order they were made.
    pub fn spawn_emit_to_rooms(
        &self,
        rooms: Vec<String>,
        except: Vec<String>,
        event: String,
        data: serde_json::Value,
    ) {
        let lane = self.inner.host_emits.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<HostEmit>();
            let engine: std::sync::Weak<_> = Arc::downgrade(&self.inner);
            let (runtime, log_id) = (self.runtime.clone(), self.log_id);
            self.inner.handle.spawn(async move {
                while let Some(e) = rx.recv().await {
                    let Some(inner) = engine.upgrade() else {
                        return;
                    };
                    let engine = Engine {
                        inner,
                        runtime: runtime.clone(),
                        log_id,
                    };
                    let rooms: Vec<&str> = e.rooms.iter().map(String::as_str).collect();
                    let except: Vec<&str> = e.except.iter().map(String::as_str).collect();
                    engine.emit_to_rooms(&rooms, &except, &e.event, &e.data);
                }
            });
            tx
        });
        let _ = lane.send(HostEmit {
            rooms,
            except,
            event,
            data,
        });
    }

    /// Number of open Engine.IO sessions.
    pub fn connection_count(&self) -> usize {
        self.inner.sio_server.session_count()
    }
}
