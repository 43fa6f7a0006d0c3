//! Asking the upstream resolvers: UDP first, TCP when the answer comes back
//! truncated, a timeout per attempt, and the next upstream when one does
//! not answer or fails (SERVFAIL, REFUSED). The upstream that answered last
//! is asked first next time, so a dead upstream costs one timeout, not one
//! per query.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::answer::EDNS_PAYLOAD;

/// Forwarding policy and the memory of which upstream works.
#[derive(Debug)]
pub struct Forwarder {
    /// How long one attempt (one upstream, UDP, or TCP after truncation)
    /// may take.
    pub attempt_timeout: Duration,
    /// How many times the whole list is tried.
    pub rounds: usize,
    preferred: AtomicUsize,
}

impl Forwarder {
    /// A forwarder with the given per-attempt timeout and rounds.
    pub fn new(attempt_timeout: Duration, rounds: usize) -> Self {
        Forwarder {
            attempt_timeout,
            rounds: rounds.max(1),
            preferred: AtomicUsize::new(0),
        }
    }

    /// The upstreams' answer to `query`'s question (ID not yet the
    /// client's), or `None` when none answered. A SERVFAIL or REFUSED is
    /// returned only when no upstream did better.
    pub async fn resolve(&self, query: &Message, upstreams: &[SocketAddr]) -> Option<Message> {
        let question = query.queries().first()?.clone();
        let n = upstreams.len();
        if n == 0 {
            return None;
        }
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut fallback = None;
        for _ in 0..self.rounds {
            for k in 0..n {
                let i = (start + k) % n;
                let server = upstreams[i];
                match self.ask(server, query, &question).await {
                    Ok(reply)
                        if matches!(
                            reply.response_code(),
                            ResponseCode::NoError | ResponseCode::NXDomain
                        ) =>
                    {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Some(reply);
                    }
                    Ok(reply) => {
                        log::debug!(
                            "upstream {server}: {} for {question}",
                            reply.response_code()
                        );
                        fallback = Some(reply);
                    }
                    Err(e) => log::debug!("upstream {server}: {e} for {question}"),
                }
            }
        }
        fallback
    }

    /// One upstream: UDP, then TCP if the answer was truncated.
    async fn ask(&self, server: SocketAddr, query: &Message, q: &Query) -> io::Result<Message> {
        let id: u16 = rand::random();
        let bytes = upstream_query(query, id)
            .to_vec()
            .map_err(io::Error::other)?;
        let udp = timeout(self.attempt_timeout, udp_exchange(server, &bytes, id, q))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer over UDP"))??;
        if !udp.truncated() {
            return Ok(udp);
        }
        timeout(self.attempt_timeout, tcp_exchange(server, &bytes, id, q))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer over TCP"))?
    }
}

/// The query sent upstream: the client's question and flags under a fresh
/// random ID, with the proxy's own EDNS size.
fn upstream_query(query: &Message, id: u16) -> Message {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_checking_disabled(query.checking_disabled());
    m.add_queries(query.queries().iter().cloned());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    if let Some(e) = query.extensions() {
        edns.set_dnssec_ok(e.flags().dnssec_ok);
    }
    m.set_edns(edns);
    m
}

/// Whether `reply` answers the query with `id` about `q` (anything else on
/// the socket is ignored: late answers, spoofing attempts).
fn answers(reply: &Message, id: u16, q: &Query) -> bool {
    reply.id() == id
        && reply.message_type() == MessageType::Response
        && reply.queries().first().is_some_and(|r| {
            r.query_type() == q.query_type()
                && r.query_class() == q.query_class()
                && r.name() == q.name()
        })
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8], id: u16, q: &Query) -> io::Result<Message> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(server).await?;
    sock.send(bytes).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = sock.recv(&mut buf).await?;
        if let Ok(reply) = Message::from_vec(&buf[..n]) {
            if answers(&reply, id, q) {
                return Ok(reply);
            }
        }
    }
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8], id: u16, q: &Query) -> io::Result<Message> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len()).map_err(io::Error::other)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    loop {
        let body = read_frame(&mut stream).await?;
        let reply = Message::from_vec(&body).map_err(io::Error::other)?;
        if answers(&reply, id, q) {
            return Ok(reply);
        }
    }
}

/// One DNS-over-TCP message: a two-byte length, then the message.
pub async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin)) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// Write one DNS-over-TCP message.
pub async fn write_frame(
    stream: &mut (impl AsyncWriteExt + Unpin),
    bytes: &[u8],
) -> io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await
}
