//! Watches: a thread follows changes under a key or prefix and hands them
//! over a channel, resuming from the next revision after any reconnect.

use std::io::BufRead;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::{base64, http, int, prefix_end, Client, KeyValue, Timeouts};

/// How long a watch may stay silent before its connection is replaced
/// (a member that vanished without closing the socket is noticed this way;
/// the new connection resumes at the next revision, so nothing is lost).
const IDLE_RECONNECT: Duration = Duration::from_secs(10);

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The key and, for a put, its new value (a delete has no value).
    pub kv: KeyValue,
}

/// What a [`Watch`] delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// Changes, in revision order; `revision` is the last one's.
    Events { revision: i64, events: Vec<Event> },
    /// The revision to resume from was compacted away, so changes were
    /// missed: the watch has ended. Read the keys again
    /// ([`Client::range_prefix`]) and watch from that read's revision + 1.
    Compacted { compact_revision: i64 },
}

/// A running watch; dropping it stops its thread.
pub struct Watch {
    messages: Receiver<WatchMessage>,
    /// The first revision the watch covers, once etcd has created it.
    start: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// The next message, waiting up to `timeout`; `Disconnected` once the
    /// watch has ended (after [`WatchMessage::Compacted`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<WatchMessage, RecvTimeoutError> {
        self.messages.recv_timeout(timeout)
    }

    /// The first revision the watch covers, once a member has created it
    /// (None before): every change from it on is delivered.
    pub fn started_at(&self) -> Option<i64> {
        Some(self.start.load(Ordering::SeqCst)).filter(|&r| r > 0)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = self.socket.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The watch thread's state.
struct Follower {
    members: Vec<String>,
    transport: http::Transport,
    member: usize,
    timeouts: Timeouts,
    key: Vec<u8>,
    range_end: Option<Vec<u8>>,
    /// The first revision not delivered yet.
    next: i64,
    stop: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    out: Sender<WatchMessage>,
    start: Arc<AtomicI64>,
}

/// Why one connection of a watch ended.
enum Ended {
    /// Reconnect (to the next member if this one failed).
    Reconnect(String),
    /// Stop the thread: dropped, compacted, or the receiver is gone.
    Stop,
}

impl Client {
    /// Watches `key` (every key under it if `prefix`) from revision
    /// `from` (0: from now on). The watch survives member failures: it
    /// reconnects to the next member and resumes where it was.
    pub fn watch(&self, key: &[u8], prefix: bool, from: i64) -> Watch {
        let (out, messages) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let socket = Arc::new(Mutex::new(None));
        let start = Arc::new(AtomicI64::new(0));
        let mut follower = Follower {
            start: start.clone(),
            members: self.members.clone(),
            transport: self.transport.clone(),
            member: self.preferred.load(Ordering::Relaxed),
            timeouts: Timeouts {
                io: IDLE_RECONNECT,
                ..self.timeouts
            },
            key: key.to_vec(),
            range_end: prefix.then(|| prefix_end(key)),
            next: from,
            stop: stop.clone(),
            socket: socket.clone(),
            out,
        };
        let thread = std::thread::Builder::new()
            .name("etcd-watch".into())
            .spawn(move || follower.run())
            .expect("spawn the watch thread");
        Watch {
            messages,
            start,
            stop,
            socket,
            thread: Some(thread),
        }
    }
}

impl Follower {
    fn run(&mut self) {
        let mut failures = 0usize;
        while !self.stop.load(Ordering::SeqCst) {
            let mut connected = false;
            match self.follow_once(&mut connected) {
                Ended::Stop => return,
                Ended::Reconnect(why) => {
                    log::debug!(
                        "etcd watch on {}: {why}; reconnecting",
                        self.members[self.member]
                    );
                    // A member that took the watch is tried again first.
                    if !connected {
                        self.member = (self.member + 1) % self.members.len();
                    }
                    failures = if connected { 0 } else { failures + 1 };
                    // Back off once every member has failed in a row.
                    if failures >= self.members.len() {
                        self.pause(Duration::from_millis(500));
                    }
                }
            }
        }
    }

    fn pause(&self, total: Duration) {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < total && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(step);
            waited += step;
        }
    }

    fn request(&self) -> Value {
        let mut create = Map::new();
        create.insert("key".into(), json!(base64::encode(&self.key)));
        if let Some(end) = &self.range_end {
            create.insert("range_end".into(), json!(base64::encode(end)));
        }
        if self.next > 0 {
            create.insert("start_revision".into(), json!(self.next.to_string()));
        }
        json!({ "create_request": create })
    }

    /// One connection: create the watch, deliver its events until it ends.
    fn follow_once(&mut self, connected: &mut bool) -> Ended {
        let member = self.members[self.member].clone();
        let body = serde_json::to_vec(&self.request()).expect("JSON values serialize");
        let stream =
            match http::post_streaming(&member, &self.transport, "/v3/watch", &body, self.timeouts)
            {
                Ok(s) => s,
                Err(http::Failure::NotSent(why) | http::Failure::Sent(why)) => {
                    return Ended::Reconnect(why)
                }
            };
        if stream.status != 200 {
            return Ended::Reconnect(format!("HTTP {}", stream.status));
        }
        *connected = true;
        *self.socket.lock().unwrap_or_else(|p| p.into_inner()) = Some(stream.socket);
        if self.stop.load(Ordering::SeqCst) {
            return Ended::Stop;
        }
        let mut body = stream.body;
        let mut line = String::new();
        loop {
            line.clear();
            match body.read_line(&mut line) {
                Ok(0) => return Ended::Reconnect("the member closed the watch".into()),
                Ok(_) => {}
                Err(e) => return Ended::Reconnect(format!("reading: {e}")),
            }
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => return Ended::Reconnect(format!("a message that is not JSON: {e}")),
            };
            let Some(result) = v.get("result") else {
                return Ended::Reconnect(format!("an error: {v}"));
            };
            if let Some(ended) = self.deliver(result) {
                return ended;
            }
        }
    }

    /// Hands one watch response over; Some when the connection is done.
    fn deliver(&mut self, r: &Value) -> Option<Ended> {
        let compact = int(r, "compact_revision");
        if compact > 0 {
            let _ = self.out.send(WatchMessage::Compacted {
                compact_revision: compact,
            });
            return Some(Ended::Stop);
        }
        // A watch "from now" is pinned to the revision it started at, so a
        // reconnect before the first event misses nothing either.
        if r.get("created").and_then(Value::as_bool) == Some(true) {
            if self.next == 0 {
                self.next = r.get("header").map(|h| int(h, "revision")).unwrap_or(0) + 1;
            }
            let _ = self
                .start
                .compare_exchange(0, self.next, Ordering::SeqCst, Ordering::SeqCst);
        }
        if r.get("canceled").and_then(Value::as_bool) == Some(true) {
            let why = r.get("cancel_reason").and_then(Value::as_str).unwrap_or("");
            return Some(Ended::Reconnect(format!("canceled by the member: {why}")));
        }
        let list = r.get("events").and_then(Value::as_array)?;
        let mut events = Vec::with_capacity(list.len());
        for e in list {
            let kv = match e.get("kv").map(KeyValue::from_json) {
                Some(Ok(kv)) => kv,
                Some(Err(why)) => return Some(Ended::Reconnect(why)),
                None => continue,
            };
            let kind = match e.get("type").and_then(Value::as_str) {
                Some("DELETE") => EventKind::Delete,
                _ => EventKind::Put,
            };
            events.push(Event { kind, kv });
        }
        let revision = events.iter().map(|e| e.kv.mod_revision).max()?;
        self.next = revision + 1;
        match self.out.send(WatchMessage::Events { revision, events }) {
            Ok(()) => None,
            Err(_) => Some(Ended::Stop),
        }
    }
}
