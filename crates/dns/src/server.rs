//! The proxy's sockets: per network, UDP and TCP port 53 on its gateway
//! addresses (in its router namespace for an Overlay network), answering from that network's names, the cache, or upstream.
//! [`Proxy::update`] makes the listeners match the networks: it binds new
//! ones, closes those of deleted networks and swaps the names, so names
//! appear and vanish with their endpoints without a restart.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hostnet_dataplane::linux::run_in_netns;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::answer::{self, Outcome};
use crate::cache::{Cache, Key};
use crate::forward::{read_frame, write_frame, Forwarder};
use crate::resolv::Upstreams;
use crate::zone::{Host, Names, Zone};

/// How the proxy behaves.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// The host's resolver configuration (upstream servers).
    pub resolv_conf: PathBuf,
    /// Time allowed for one upstream attempt.
    pub attempt_timeout: Duration,
    /// Passes over the upstream list before giving up with SERVFAIL.
    pub rounds: usize,
    /// Upstream answers kept at most.
    pub cache_size: usize,
    /// The port to listen on (53; tests may use another).
    pub port: u16,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            attempt_timeout: Duration::from_millis(800),
            rounds: 2,
            cache_size: 10_000,
            port: 53,
        }
    }
}

/// TCP connections served at once, per network.
const TCP_CONNECTIONS: usize = 64;
/// An idle TCP connection is closed after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// UDP receive loops per network socket (the runtime has two workers).
const UDP_LOOPS: usize = 2;

/// What every listener shares: the cache, the upstreams, the forwarder.
struct Shared {
    cache: Mutex<Cache>,
    upstreams: Mutex<Upstreams>,
    forwarder: Forwarder,
    /// The proxy's own addresses, never used as upstreams.
    own: RwLock<Vec<IpAddr>>,
}

/// One network's listener.
struct Listener {
    /// The network's zone, without its hosts (those are in `names`).
    zone: Zone,
    names: Arc<RwLock<Arc<Names>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The gateway DNS proxy of every network that has one.
pub struct Proxy {
    runtime: Handle,
    port: u16,
    shared: Arc<Shared>,
    /// By network ID.
    listeners: Mutex<HashMap<String, Listener>>,
}

impl Proxy {
    /// A proxy with no networks yet, running its sockets on `runtime`.
    pub fn new(runtime: Handle, settings: ProxySettings) -> Self {
        Proxy {
            runtime,
            port: settings.port,
            shared: Arc::new(Shared {
                cache: Mutex::new(Cache::new(settings.cache_size)),
                upstreams: Mutex::new(Upstreams::new(settings.resolv_conf)),
                forwarder: Forwarder::new(settings.attempt_timeout, settings.rounds),
                own: RwLock::new(Vec::new()),
            }),
            listeners: Mutex::new(HashMap::new()),
        }
    }

    /// Serve exactly `zones`: bind the new ones, drop the gone ones (and
    /// those whose addresses or namespace changed), and give every
    /// listener its network's current names. A zone whose addresses cannot
    /// be bound is logged and tried again on the next update.
    pub fn update(&self, zones: &[Zone]) {
        let mut listeners = lock(&self.listeners);
        listeners.retain(|network, l| {
            let keep = zones.iter().any(|z| {
                z.network == *network && z.listen == l.zone.listen && z.netns == l.zone.netns
            });
            if !keep {
                log::info!(
                    "DNS proxy of network {network} on {:?} closed",
                    l.zone.listen
                );
            }
            keep
        });
        for zone in zones {
            let (names, skipped) = Names::build(zone);
            for s in skipped {
                log::warn!("{s}");
            }
            if let Some(l) = listeners.get_mut(&zone.network) {
                *l.names.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(names);
                l.zone = header(zone);
                continue;
            }
            let names = Arc::new(RwLock::new(Arc::new(names)));
            match self.listen(zone, &names) {
                Ok(tasks) => {
                    log::info!(
                        "DNS proxy for network {} on {:?} port {}{}",
                        zone.network,
                        zone.listen,
                        self.port,
                        where_(zone)
                    );
                    listeners.insert(
                        zone.network.clone(),
                        Listener {
                            zone: header(zone),
                            names,
                            tasks,
                        },
                    );
                }
                Err(e) => log::error!(
                    "DNS proxy for network {}: cannot listen on {:?} port {}{}: {e}",
                    zone.network,
                    zone.listen,
                    self.port,
                    where_(zone)
                ),
            }
        }
        // Only addresses of the daemon's own namespace could loop back as
        // upstreams; a router namespace's are not reachable from here.
        *self.shared.own.write().unwrap_or_else(|p| p.into_inner()) = listeners
            .values()
            .filter(|l| l.zone.netns.is_none())
            .flat_map(|l| l.zone.listen.iter().copied())
            .collect();
    }

    /// Publish one more host on `network` (one of the zones of the last
    /// [`Proxy::update`]); the cost does not grow with the hosts already
    /// there.
    pub fn add_host(&self, network: &str, host: &Host) {
        let listeners = lock(&self.listeners);
        let Some(l) = listeners.get(network) else {
            return;
        };
        let mut names = l.names.write().unwrap_or_else(|p| p.into_inner());
        for s in Arc::make_mut(&mut names).insert(&l.zone, host) {
            log::warn!("{s}");
        }
    }

    /// Withdraw a host published with [`Proxy::add_host`] or an update.
    pub fn remove_host(&self, network: &str, host: &Host) {
        let listeners = lock(&self.listeners);
        if let Some(l) = listeners.get(network) {
            let mut names = l.names.write().unwrap_or_else(|p| p.into_inner());
            Arc::make_mut(&mut names).remove(&l.zone, host);
        }
    }

    /// The addresses served now (of every namespace).
    pub fn addresses(&self) -> Vec<IpAddr> {
        lock(&self.listeners)
            .values()
            .flat_map(|l| l.zone.listen.iter().copied())
            .collect()
    }

    /// Bind the zone's sockets (in its namespace) and serve them on the
    /// runtime, all or nothing.
    fn listen(
        &self,
        zone: &Zone,
        names: &Arc<RwLock<Arc<Names>>>,
    ) -> io::Result<Vec<JoinHandle<()>>> {
        let sockets = bind_all(&zone.listen, self.port, zone.netns.as_deref())?;
        let _guard = self.runtime.enter();
        let mut tasks = Vec::new();
        for (udp, tcp) in sockets {
            let udp = Arc::new(UdpSocket::from_std(udp)?);
            let tcp = TcpListener::from_std(tcp)?;
            for _ in 0..UDP_LOOPS {
                tasks.push(self.runtime.spawn(serve_udp(
                    udp.clone(),
                    names.clone(),
                    self.shared.clone(),
                )));
            }
            tasks.push(
                self.runtime
                    .spawn(serve_tcp(tcp, names.clone(), self.shared.clone())),
            );
        }
        Ok(tasks)
    }
}

/// UDP and TCP sockets on `port` of each address, non-blocking, opened in
/// `netns` when given (on a short-lived thread that entered it: a socket
/// keeps the namespace it was made in, and the daemon's threads never
/// change theirs).
fn bind_all(
    addresses: &[IpAddr],
    port: u16,
    netns: Option<&Path>,
) -> io::Result<Vec<(std::net::UdpSocket, std::net::TcpListener)>> {
    let bind = || {
        addresses
            .iter()
            .map(|ip| {
                let at = SocketAddr::new(*ip, port);
                let udp = std::net::UdpSocket::bind(at)?;
                udp.set_nonblocking(true)?;
                let tcp = std::net::TcpListener::bind(at)?;
                tcp.set_nonblocking(true)?;
                Ok((udp, tcp))
            })
            .collect::<io::Result<Vec<_>>>()
    };
    match netns {
        Some(path) => run_in_netns(path, bind)?,
        None => bind(),
    }
}

/// " in namespace PATH" for a zone outside the daemon's namespace.
fn where_(zone: &Zone) -> String {
    zone.netns
        .as_ref()
        .map(|p| format!(" in namespace {}", p.display()))
        .unwrap_or_default()
}

/// A zone's network, address and domain, without its hosts.
fn header(zone: &Zone) -> Zone {
    Zone {
        hosts: Vec::new(),
        ..zone.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn current(names: &RwLock<Arc<Names>>) -> Arc<Names> {
    names.read().unwrap_or_else(|p| p.into_inner()).clone()
}

async fn serve_udp(sock: Arc<UdpSocket>, names: Arc<RwLock<Arc<Names>>>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("DNS proxy: receiving: {e}");
                continue;
            }
        };
        let table = current(&names);
        match answer::decide(&buf[..n], peer.ip(), &table) {
            Outcome::Drop => {}
            Outcome::Reply(reply) => {
                // Local answers are small; only a big one needs the
                // query's EDNS size.
                let bytes = match reply.to_vec() {
                    Ok(b) if b.len() <= 512 => Some(b),
                    _ => answer::udp_bytes(&reply, reply_limit(&buf[..n])),
                };
                if let Some(bytes) = bytes {
                    let _ = sock.send_to(&bytes, peer).await;
                }
            }
            Outcome::Forward(query) => {
                let limit = answer::udp_limit(&query);
                if let Some(reply) = cached(&shared, &query) {
                    if let Some(bytes) = answer::udp_bytes(&reply, limit) {
                        let _ = sock.send_to(&bytes, peer).await;
                    }
                    continue;
                }
                let (sock, shared) = (sock.clone(), shared.clone());
                tokio::spawn(async move {
                    let reply = forward(&shared, &query).await;
                    if let Some(bytes) = answer::udp_bytes(&reply, limit) {
                        let _ = sock.send_to(&bytes, peer).await;
                    }
                });
            }
        }
    }
}

/// The UDP size a local reply may take: the query's EDNS size when it
/// parses, else 512.
fn reply_limit(bytes: &[u8]) -> u16 {
    Message::from_vec(bytes)
        .map(|q| answer::udp_limit(&q))
        .unwrap_or(512)
}

async fn serve_tcp(listener: TcpListener, names: Arc<RwLock<Arc<Names>>>, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("DNS proxy: accepting: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // too many connections: this one is closed
        };
        let (names, shared) = (names.clone(), shared.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tcp_connection(stream, peer, &names, &shared).await;
        });
    }
}

async fn tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    names: &RwLock<Arc<Names>>,
    shared: &Shared,
) -> io::Result<()> {
    loop {
        let Ok(body) = tokio::time::timeout(TCP_IDLE, read_frame(&mut stream)).await else {
            return Ok(());
        };
        let body = body?;
        let table = current(names);
        let reply = match answer::decide(&body, peer.ip(), &table) {
            Outcome::Drop => return Ok(()),
            Outcome::Reply(reply) => reply,
            Outcome::Forward(query) => match cached(shared, &query) {
                Some(reply) => reply,
                None => forward(shared, &query).await,
            },
        };
        let bytes = reply.to_vec().map_err(io::Error::other)?;
        write_frame(&mut stream, &bytes).await?;
    }
}

/// A cached answer to `query`, made the client's.
fn cached(shared: &Shared, query: &Message) -> Option<Message> {
    let key = Key::of(query)?;
    let hit = lock(&shared.cache).get(&key, Instant::now())?;
    Some(for_client(query, hit))
}

/// Ask upstream (and cache the answer); SERVFAIL when nobody answers.
async fn forward(shared: &Shared, query: &Message) -> Message {
    let exclude = shared.own.read().unwrap_or_else(|p| p.into_inner()).clone();
    let upstreams = lock(&shared.upstreams).current(Instant::now(), &exclude);
    match shared.forwarder.resolve(query, &upstreams).await {
        Some(reply) => {
            if let Some(key) = Key::of(query) {
                lock(&shared.cache).put(key, &reply, Instant::now());
            }
            for_client(query, reply)
        }
        None => {
            if upstreams.is_empty() {
                log::warn!("DNS proxy: no upstream resolver to forward to");
            }
            answer::error(query, ResponseCode::ServFail)
        }
    }
}

/// An upstream answer under the client's ID, with EDNS only if the client
/// used it.
fn for_client(query: &Message, mut reply: Message) -> Message {
    reply.set_id(query.id());
    reply.set_recursion_desired(query.recursion_desired());
    match query.extensions() {
        Some(_) => {
            let mut edns = hickory_proto::op::Edns::new();
            edns.set_max_payload(answer::EDNS_PAYLOAD);
            reply.set_edns(edns);
        }
        None => {
            reply.extensions_mut().take();
        }
    }
    reply
}
