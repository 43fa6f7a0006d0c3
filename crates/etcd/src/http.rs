//! Just enough HTTP/1.1 to POST JSON to one etcd member: one connection per
//! request (`Connection: close`), bodies by `Content-Length` or chunked,
//! over TCP or TLS (the handshake is done before anything is sent).
//!
//! Whether a request failed before or after its bytes left matters to the
//! caller: a write that never left can go to another member, one that left
//! may have been applied.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How long to wait for a member.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To open a TCP connection.
    pub connect: Duration,
    /// For each read or write once connected (a quorum write takes a few
    /// milliseconds; etcd itself gives up on a proposal after about 7 s).
    pub io: Duration,
    /// How long to keep trying the members again when none could take a
    /// request (refused, or no leader: an election after a member died
    /// takes about a second) before giving up.
    pub retry: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            io: Duration::from_secs(3),
            retry: Duration::from_secs(2),
        }
    }
}

/// Why a request got no HTTP response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing was sent: the member is down or unreachable.
    NotSent(String),
    /// The request went out but no complete response came back.
    Sent(String),
}

/// A complete response.
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How to reach the members: plain TCP, or TLS with this configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transport {
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A connection to a member, TCP or TLS over it.
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// An open connection whose response headers have been read; its body is
/// read as it arrives (a watch).
pub(crate) struct Streaming {
    pub status: u16,
    pub body: Box<dyn BufRead + Send>,
    /// A handle to shut the connection down from another thread.
    pub socket: TcpStream,
}

/// Opens a connection to `member`, TLS if `transport` says so, with the
/// handshake done; also returns the TCP socket (to shut it down).
fn open(
    member: &str,
    transport: &Transport,
    t: Timeouts,
) -> Result<(Box<dyn Conn>, TcpStream), Failure> {
    let mut tcp = connect(member, t)?;
    let socket = tcp
        .try_clone()
        .map_err(|e| Failure::NotSent(e.to_string()))?;
    let Some(config) = &transport.tls else {
        return Ok((Box::new(tcp), socket));
    };
    let host = member
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(member)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Failure::NotSent(format!("{host:?} is not a TLS server name: {e}")))?;
    let mut tls = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| Failure::NotSent(format!("TLS: {e}")))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .map_err(|e| Failure::NotSent(format!("TLS handshake: {e}")))?;
    }
    Ok((Box::new(rustls::StreamOwned::new(tls, tcp)), socket))
}

/// Opens a TCP connection to `member` ("host:port"), trying each address
/// it resolves to.
pub(crate) fn connect(member: &str, t: Timeouts) -> Result<TcpStream, Failure> {
    let addrs = member
        .to_socket_addrs()
        .map_err(|e| Failure::NotSent(format!("resolving {member}: {e}")))?;
    let mut last = format!("{member} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, t.connect) {
            Ok(s) => {
                let setup = s
                    .set_nodelay(true)
                    .and_then(|_| s.set_read_timeout(Some(t.io)))
                    .and_then(|_| s.set_write_timeout(Some(t.io)));
                return setup
                    .map(|_| s)
                    .map_err(|e| Failure::NotSent(e.to_string()));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(Failure::NotSent(last))
}

/// The local address of a connection to `member`: the source address this
/// host uses to reach the cluster.
pub(crate) fn local_address(member: &str, t: Timeouts) -> Option<IpAddr> {
    connect(member, t).ok()?.local_addr().ok().map(|a| a.ip())
}

fn send(stream: &mut dyn Conn, member: &str, path: &str, body: &[u8]) -> Result<(), Failure> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {member}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // Bytes may be on the wire once write starts: count a failure as sent.
    stream
        .write_all(&request)
        .and_then(|_| stream.flush())
        .map_err(|e| Failure::Sent(format!("sending: {e}")))
}

/// POSTs `body` to `path` on `member` and reads the whole response.
pub(crate) fn post(
    member: &str,
    transport: &Transport,
    path: &str,
    body: &[u8],
    t: Timeouts,
) -> Result<Response, Failure> {
    let (mut stream, _) = open(member, transport, t)?;
    send(stream.as_mut(), member, path, body)?;
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).map_err(Failure::Sent)?;
    let mut out = Vec::new();
    let read = match head.length {
        BodyLength::Fixed(n) => reader.take(n as u64).read_to_end(&mut out),
        BodyLength::Chunked => Chunked::new(reader).read_to_end(&mut out),
        BodyLength::UntilClose => reader.read_to_end(&mut out),
    };
    read.map_err(|e| Failure::Sent(format!("reading the response: {e}")))?;
    Ok(Response {
        status: head.status,
        body: out,
    })
}

/// POSTs `body` and returns once the response headers are in; the body is
/// read by the caller (a watch's stream of messages).
pub(crate) fn post_streaming(
    member: &str,
    transport: &Transport,
    path: &str,
    body: &[u8],
    t: Timeouts,
) -> Result<Streaming, Failure> {
    let (mut stream, socket) = open(member, transport, t)?;
    send(stream.as_mut(), member, path, body)?;
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).map_err(Failure::Sent)?;
    let body: Box<dyn BufRead + Send> = match head.length {
        BodyLength::Fixed(n) => Box::new(BufReader::new(reader.take(n as u64))),
        BodyLength::Chunked => Box::new(BufReader::new(Chunked::new(reader))),
        BodyLength::UntilClose => Box::new(reader),
    };
    Ok(Streaming {
        status: head.status,
        body,
        socket,
    })
}

enum BodyLength {
    Fixed(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    length: BodyLength,
}

fn read_head(r: &mut impl BufRead) -> Result<Head, String> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("reading the response: {e}"))?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", line.trim_end()))?;
    let mut length = BodyLength::UntilClose;
    loop {
        line.clear();
        r.read_line(&mut line)
            .map_err(|e| format!("reading the response headers: {e}"))?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            length = BodyLength::Fixed(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            length = BodyLength::Chunked;
        }
    }
    Ok(Head { status, length })
}

/// A chunked transfer-encoded body as a plain byte stream.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }

    fn next_chunk(&mut self) -> std::io::Result<()> {
        let mut line = String::new();
        self.inner.read_line(&mut line)?;
        if line.trim().is_empty() {
            // The CRLF that ends the previous chunk's data.
            line.clear();
            self.inner.read_line(&mut line)?;
        }
        if line.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let size = line.trim().split(';').next().unwrap_or("");
        self.left = usize::from_str_radix(size, 16).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad chunk size {size:?}"),
            )
        })?;
        if self.left == 0 {
            self.done = true;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            self.next_chunk()?;
            if self.done {
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_chunked_body() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n";
        let mut r = BufReader::new(&wire[..]);
        let head = read_head(&mut r).unwrap();
        assert_eq!(head.status, 200);
        assert!(matches!(head.length, BodyLength::Chunked));
        let mut out = String::new();
        Chunked::new(r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
    }

    #[test]
    fn reads_a_sized_body_and_refuses_garbage() {
        let wire = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}extra";
        let mut r = BufReader::new(&wire[..]);
        let head = read_head(&mut r).unwrap();
        assert_eq!(head.status, 400);
        assert!(matches!(head.length, BodyLength::Fixed(2)));
        let err = read_head(&mut BufReader::new(&b"SSH-2.0-OpenSSH\r\n"[..])).err();
        assert!(err.unwrap().contains("not an HTTP response"));
    }
}
