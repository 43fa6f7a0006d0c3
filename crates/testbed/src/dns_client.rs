//! A one-question DNS client for the tests (the probe's `dns` command):
//! asks a server over UDP (no EDNS, so 512-byte answers) or TCP and says
//! what came back on one line: `RCODE tc=0|1 TYPE VALUE ...`, answers
//! sorted, e.g. `NOERROR tc=0 A 10.88.0.3`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// Ask `server` about `name` (`type_` as in `A`, `AAAA`, `PTR`).
pub fn ask(
    server: SocketAddr,
    name: &str,
    type_: &str,
    tcp: bool,
    wait: Duration,
) -> std::io::Result<String> {
    let ty = RecordType::from_str(type_).map_err(std::io::Error::other)?;
    let name = Name::from_str(name).map_err(std::io::Error::other)?;
    let mut m = Message::new();
    let id: u16 = std::process::id() as u16 ^ 0x5a5a;
    m.set_id(id).set_recursion_desired(true);
    m.add_query(Query::query(name, ty));
    let bytes = m.to_vec().map_err(std::io::Error::other)?;
    let reply = if tcp {
        over_tcp(server, &bytes, wait)?
    } else {
        over_udp(server, &bytes, wait)?
    };
    let reply = Message::from_vec(&reply).map_err(std::io::Error::other)?;
    if reply.id() != id {
        return Err(std::io::Error::other("answer with another ID"));
    }
    Ok(describe(&reply))
}

/// The one-line summary of an answer.
pub fn describe(reply: &Message) -> String {
    let mut answers: Vec<String> = reply
        .answers()
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data()))
        .collect();
    answers.sort();
    let mut line = format!(
        "{} tc={}",
        format!("{:?}", reply.response_code()).to_uppercase(),
        u8::from(reply.truncated())
    );
    for a in answers {
        line.push(' ');
        line.push_str(&a);
    }
    line
}

fn over_udp(server: SocketAddr, bytes: &[u8], wait: Duration) -> std::io::Result<Vec<u8>> {
    let s = UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    s.set_read_timeout(Some(wait))?;
    s.send_to(bytes, server)?;
    let mut buf = vec![0u8; 65_535];
    let (n, _) = s.recv_from(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn over_tcp(server: SocketAddr, bytes: &[u8], wait: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, wait)?;
    s.set_read_timeout(Some(wait))?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    Ok(body)
}
