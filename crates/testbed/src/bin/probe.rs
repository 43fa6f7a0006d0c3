//! hostnet-probe: the traffic tool of hostnet's kernel tests.
//!
//! Servers print `ready` once bound, then one line per thing they saw, so
//! a test asserts on what crossed the wire. Clients exit 0 on success.
//!
//! ```text
//! tcp-serve ADDR:PORT        answer each connection with "peer IP:PORT"
//! tcp-echo ADDR:PORT         echo every line back
//! tcp-get ADDR:PORT          connect, print the server's line
//! tcp-session ADDR:PORT      send each stdin line, print each echoed line
//! tcp-push ADDR:PORT         accept one connection; send each stdin line
//!                            first, print what comes back ("" on timeout)
//! tcp-echo-to ADDR:PORT      connect, echo every line back
//! udp-serve ADDR:PORT        answer each datagram with "peer IP:PORT"
//! tcp-whoami ADDR:PORT       answer each connection with "peer IP:PORT local IP:PORT"
//!                            (the address the connection arrived for)
//! udp-whoami ADDR:PORT       the same per datagram (its destination from
//!                            IP_PKTINFO), answered from that address
//! udp-get ADDR:PORT          send a datagram, print the answer
//! udp-sink ADDR:PORT         print "got N bytes from IP:PORT" per datagram; never answer
//! udp-send ADDR:PORT N SIZE  send N datagrams of SIZE bytes, each from a new
//!                            socket (a new flow); print "sent N" (refused sends count)
//! udp-echo ADDR:PORT         send every datagram back to its sender
//! udp-stream ADDR:PORT MS SECS  send a numbered datagram every MS ms for SECS s
//!                            to a udp-echo; print "flowing" at the first echo,
//!                            then "sent N echoed M longest-gap-ms G" (the
//!                            longest wait between two echoes: an outage)
//! raw-listen PROTO           print "got SRC" for each IPv4 packet of PROTO
//! raw6-listen PROTO          print "got SRC" for each IPv6 packet of PROTO
//! raw-send PROTO DST         send one IPv4 (or, DST being IPv6, IPv6) packet
//!                            of protocol PROTO
//! ping DST [SIZE]            ICMP echo; exit 0 on a reply. With SIZE (bytes of
//!                            ICMP payload) the packet has DF set and is never
//!                            fragmented: too big for the path fails at once.
//!                            DST IPv6: ICMPv6 echo (no SIZE)
//! tcp-sink ADDR:PORT         print "got N bytes from IP:PORT" per connection,
//!                            once the client has closed it
//! tcp-send ADDR:PORT BYTES   send BYTES bytes on one connection, then close
//! dns SERVER NAME TYPE [tcp]  one DNS question; print `RCODE tc=N TYPE VALUE...`
//! sctp-init DST:PORT [SPORT]  send an SCTP INIT from SPORT (5000) (raw socket:
//!                            this kernel has no SCTP sockets); DST IPv4 or
//!                            [IPv6]
//! sctp-init-ack SRC DST:PORT  send the INIT ACK answering it, from SRC:8080
//! checksum-offload IFACE off  compute and verify checksums in software on
//!                            IFACE (ethtool -K IFACE rx off tx off), so
//!                            wrong checksums show on the wire and are dropped
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a bulk transfer may stall before it counts as failed.
const BULK_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let result = match a(0) {
        "tcp-serve" => tcp_serve(a(1), false),
        "tcp-echo" => tcp_serve(a(1), true),
        "tcp-get" => tcp_get(a(1)),
        "tcp-session" => tcp_session(a(1)),
        "tcp-push" => tcp_push(a(1)),
        "tcp-echo-to" => tcp_echo_to(a(1)),
        "udp-serve" => udp_serve(a(1)),
        "tcp-whoami" => tcp_whoami(a(1)),
        "udp-whoami" => udp_whoami(a(1)),
        "udp-get" => udp_get(a(1)),
        "udp-sink" => udp_sink(a(1)),
        "udp-echo" => udp_echo(a(1)),
        "udp-stream" => udp_stream(a(1), number(a(2)) as u64, number(a(3)) as u64),
        "udp-send" => udp_send(a(1), number(a(2)), number(a(3))),
        "raw-listen" => raw_listen(proto(a(1))),
        "raw6-listen" => hostnet_testbed::raw6::listen(proto(a(1)), ready, say),
        "raw-send" => match a(2).parse::<std::net::Ipv6Addr>() {
            Ok(dst) => hostnet_testbed::raw6::send(proto(a(1)), dst),
            Err(_) => raw_send(proto(a(1)), a(2)),
        },
        "ping" => match a(1).parse::<std::net::Ipv6Addr>() {
            Ok(dst) => hostnet_testbed::raw6::ping(dst, TIMEOUT),
            Err(_) => ping(a(1), args.get(2).map(|s| number(s))),
        },
        "tcp-sink" => tcp_sink(a(1)),
        "tcp-send" => tcp_send(a(1), number(a(2))),
        "sctp-init" => sctp_send(
            None,
            args.get(2).map_or(5000, |p| number(p) as u16),
            a(1),
            hostnet_testbed::sctp::init,
        ),
        "sctp-init-ack" => sctp_send(Some(a(1)), 8080, a(2), hostnet_testbed::sctp::init_ack),
        "checksum-offload" if a(2) == "off" => checksum_offload_off(a(1)),
        "dns" => dns(
            a(1),
            a(2),
            a(3),
            args.get(4).map(String::as_str) == Some("tcp"),
        ),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("hostnet-probe: {e}");
        std::process::exit(1);
    }
}

fn dns(server: &str, name: &str, ty: &str, tcp: bool) -> std::io::Result<()> {
    let server = match server.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => SocketAddr::new(server.parse().map_err(std::io::Error::other)?, 53),
    };
    // Two tries over UDP, as a stub resolver makes (`attempts:2`): a
    // datagram may be lost on a loaded machine; an answer never is wrong.
    let ask = || hostnet_testbed::dns_client::ask(server, name, ty, tcp, Duration::from_secs(3));
    let line = match ask() {
        Err(e)
            if !tcp
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
        {
            eprintln!("hostnet-probe: dns: {e}; asking again");
            ask()?
        }
        other => other?,
    };
    say(&line);
    Ok(())
}

fn usage() -> ! {
    eprintln!("usage: hostnet-probe tcp-serve|tcp-echo|tcp-get|tcp-session|udp-serve|udp-get|udp-sink ADDR:PORT | udp-send ADDR:PORT N SIZE | tcp-sink ADDR:PORT | tcp-send ADDR:PORT BYTES | raw-listen PROTO | raw6-listen PROTO | raw-send PROTO DST | ping DST [SIZE] | dns SERVER NAME TYPE [tcp]");
    std::process::exit(2)
}

fn proto(s: &str) -> i32 {
    s.parse().unwrap_or_else(|_| usage())
}

fn addr(s: &str) -> std::io::Result<SocketAddr> {
    s.parse()
        .map_err(|e| std::io::Error::other(format!("{s}: {e}")))
}

fn ready() {
    println!("ready");
    let _ = std::io::stdout().flush();
}

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

fn tcp_serve(at: &str, echo: bool) -> std::io::Result<()> {
    let l = TcpListener::bind(addr(at)?)?;
    ready();
    for conn in l.incoming() {
        let mut c = conn?;
        let peer = c.peer_addr()?;
        if echo {
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().expect("clone"));
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if c.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        } else {
            say(&format!("peer {peer}"));
            let _ = writeln!(c, "peer {peer}");
        }
    }
    Ok(())
}

fn tcp_get(to: &str) -> std::io::Result<()> {
    let mut c = TcpStream::connect_timeout(&addr(to)?, TIMEOUT)?;
    c.set_read_timeout(Some(TIMEOUT))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    say(s.trim());
    Ok(())
}

fn tcp_session(to: &str) -> std::io::Result<()> {
    let c = TcpStream::connect_timeout(&addr(to)?, TIMEOUT)?;
    c.set_read_timeout(Some(TIMEOUT))?;
    ready();
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    for line in std::io::stdin().lines() {
        writeln!(w, "{}", line?)?;
        let mut back = String::new();
        r.read_line(&mut back)?;
        say(back.trim());
    }
    Ok(())
}

/// The server speaks first: what a connection does when its server side
/// sends before its client (a push after a quiet spell).
fn tcp_push(at: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(addr(at)?)?;
    ready();
    let (c, _) = l.accept()?;
    c.set_read_timeout(Some(TIMEOUT))?;
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    for line in std::io::stdin().lines() {
        writeln!(w, "{}", line?)?;
        let mut back = String::new();
        // A connection that went silent answers "".
        let _ = r.read_line(&mut back);
        say(back.trim());
    }
    Ok(())
}

fn tcp_echo_to(to: &str) -> std::io::Result<()> {
    let mut c = TcpStream::connect_timeout(&addr(to)?, TIMEOUT)?;
    ready();
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    while r.read_line(&mut line)? > 0 {
        c.write_all(line.as_bytes())?;
        line.clear();
    }
    Ok(())
}

fn tcp_sink(at: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(addr(at)?)?;
    ready();
    for conn in l.incoming() {
        let mut c = conn?;
        let peer = c.peer_addr()?;
        c.set_read_timeout(Some(BULK_TIMEOUT))?;
        let n = std::io::copy(&mut c, &mut std::io::sink())?;
        say(&format!("got {n} bytes from {peer}"));
    }
    Ok(())
}

/// A bulk transfer: full-sized segments for as long as it takes (bounded).
fn tcp_send(to: &str, bytes: usize) -> std::io::Result<()> {
    let mut c = TcpStream::connect_timeout(&addr(to)?, TIMEOUT)?;
    c.set_write_timeout(Some(BULK_TIMEOUT))?;
    let chunk = vec![0x5a; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        c.write_all(&chunk[..n])?;
        left -= n;
    }
    c.shutdown(std::net::Shutdown::Write)?;
    // Wait for the server to close: every byte was received.
    c.set_read_timeout(Some(BULK_TIMEOUT))?;
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)?;
    say(&format!("sent {bytes}"));
    Ok(())
}

fn udp_serve(at: &str) -> std::io::Result<()> {
    let s = UdpSocket::bind(addr(at)?)?;
    ready();
    let mut buf = [0u8; 1500];
    loop {
        let (_, peer) = s.recv_from(&mut buf)?;
        say(&format!("peer {peer}"));
        s.send_to(format!("peer {peer}").as_bytes(), peer)?;
    }
}

/// Which address did a connection arrive for (`getsockname`)?
fn tcp_whoami(at: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(addr(at)?)?;
    ready();
    for conn in l.incoming() {
        let mut c = conn?;
        let line = format!("peer {} local {}", c.peer_addr()?, c.local_addr()?);
        say(&line);
        let _ = writeln!(c, "{line}");
    }
    Ok(())
}

/// Which address did a datagram arrive for? Answered from it, as a UDP
/// server bound to a wildcard should (IP_PKTINFO both ways).
fn udp_whoami(at: &str) -> std::io::Result<()> {
    let s = UdpSocket::bind(addr(at)?)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    ready();
    loop {
        let (peer, info) = recv_pktinfo(fd)?;
        let local = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
        let line = format!("peer {peer} local {local}:{}", s.local_addr()?.port());
        say(&line);
        send_from(fd, line.as_bytes(), peer, &info)?;
    }
}

/// Ancillary buffer large enough for one `in_pktinfo`.
#[repr(C, align(8))]
struct Cmsg([u8; 64]);

fn recv_pktinfo(fd: libc::c_int) -> std::io::Result<(SocketAddr, libc::in_pktinfo)> {
    let mut buf = [0u8; 1500];
    let mut from = sockaddr(Ipv4Addr::UNSPECIFIED);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = Cmsg([0; 64]);
    // SAFETY: msghdr points at live buffers of the lengths given; the
    // control messages are walked with the kernel's CMSG macros.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        if libc::recvmsg(fd, &mut msg, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>());
                let peer = SocketAddr::from((
                    Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
                    u16::from_be(from.sin_port),
                ));
                return Ok((peer, info));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Err(std::io::Error::other("no IP_PKTINFO on a datagram"))
}

fn send_from(
    fd: libc::c_int,
    payload: &[u8],
    to: SocketAddr,
    info: &libc::in_pktinfo,
) -> std::io::Result<()> {
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let mut dst = sockaddr(*to.ip());
    dst.sin_port = to.port().to_be();
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut control = Cmsg([0; 64]);
    let reply = libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: info.ipi_addr,
        ipi_addr: info.ipi_addr,
    };
    // SAFETY: as in recv_pktinfo; one control message of in_pktinfo.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut dst as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::IPPROTO_IP;
        (*c).cmsg_type = libc::IP_PKTINFO;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>(), reply);
        if libc::sendmsg(fd, &msg, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `ethtool -K IFACE rx off tx off` through the legacy SIOCETHTOOL
/// commands (Debian's ethtool is not installed here).
fn checksum_offload_off(iface: &str) -> std::io::Result<()> {
    const ETHTOOL_SRXCSUM: u32 = 0x15;
    const ETHTOOL_STXCSUM: u32 = 0x17;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    if iface.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::other("interface name too long"));
    }
    // SAFETY: a socket we own, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut result = Ok(());
    for cmd in [ETHTOOL_SRXCSUM, ETHTOOL_STXCSUM] {
        let mut value = EthtoolValue { cmd, data: 0 };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: &mut value,
            _pad: [0; 16],
        };
        req.name[..iface.len()].copy_from_slice(iface.as_bytes());
        // SAFETY: SIOCETHTOOL reads an ifreq whose data points at `value`,
        // both alive for the call.
        if unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut req) } != 0 {
            result = Err(std::io::Error::last_os_error());
            break;
        }
    }
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    result?;
    say(&format!("{iface} checksums in software"));
    Ok(())
}

/// One SCTP packet made by `make(sport, dport)` to `to`, from `from` if
/// given (a raw socket bound to it).
fn sctp_send(
    from: Option<&str>,
    sport: u16,
    to: &str,
    make: fn(u16, u16) -> Vec<u8>,
) -> std::io::Result<()> {
    let to = addr(to)?;
    let to = match to {
        SocketAddr::V4(to) => to,
        // SCTP's CRC32c covers no pseudo-header: the same bytes over IPv6.
        SocketAddr::V6(to) => {
            let raw = hostnet_testbed::raw6::Raw6::new(libc::IPPROTO_SCTP)?;
            if let Some(from) = from {
                raw.bind(
                    from.parse()
                        .map_err(|e| std::io::Error::other(format!("{from}: {e}")))?,
                )?;
            }
            raw.send(*to.ip(), &make(sport, to.port()))?;
            say("sent");
            return Ok(());
        }
    };
    let raw = Raw::new(libc::IPPROTO_SCTP)?;
    if let Some(from) = from {
        let sa = sockaddr(ipv4(from)?);
        // SAFETY: a sockaddr_in of the right size on our own socket.
        let rc = unsafe {
            libc::bind(
                raw.0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    raw.send(*to.ip(), &make(sport, to.port()))?;
    say("sent");
    Ok(())
}

fn udp_get(to: &str) -> std::io::Result<()> {
    let to = addr(to)?;
    let s = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + TIMEOUT;
    // UDP may be dropped while NAT state settles: resend until the deadline.
    while Instant::now() < deadline {
        s.send_to(b"x", to)?;
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            say(String::from_utf8_lossy(&buf[..n]).trim());
            return Ok(());
        }
    }
    Err(std::io::Error::other("no answer"))
}

fn udp_sink(at: &str) -> std::io::Result<()> {
    let s = UdpSocket::bind(addr(at)?)?;
    ready();
    let mut buf = [0u8; 65536];
    loop {
        let (n, peer) = s.recv_from(&mut buf)?;
        say(&format!("got {n} bytes from {peer}"));
    }
}

fn udp_echo(at: &str) -> std::io::Result<()> {
    let s = UdpSocket::bind(addr(at)?)?;
    ready();
    let mut buf = [0u8; 1500];
    loop {
        let (n, peer) = s.recv_from(&mut buf)?;
        s.send_to(&buf[..n], peer)?;
    }
}

/// A steady stream through a path that is about to break and heal (a
/// team losing a member): the longest silence between two echoes is how
/// long the path was out, to within the interval.
fn udp_stream(to: &str, interval_ms: u64, seconds: u64) -> std::io::Result<()> {
    let to = addr(to)?;
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(to)?;
    let rx = s.try_clone()?;
    rx.set_read_timeout(Some(Duration::from_millis(100)))?;
    ready();
    let interval = Duration::from_millis(interval_ms);
    let end = Instant::now() + Duration::from_secs(seconds);
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut next = Instant::now();
        while next < end {
            // A send failing while the path is down is a lost datagram.
            let _ = s.send(&sent.to_be_bytes());
            sent += 1;
            next += interval;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        sent
    });
    let grace = end + Duration::from_millis(500);
    let (mut echoed, mut last, mut longest) = (0u64, None::<Instant>, Duration::ZERO);
    let mut buf = [0u8; 64];
    while Instant::now() < grace {
        match rx.recv(&mut buf) {
            Ok(8) => {
                let now = Instant::now();
                match last {
                    None => say("flowing"),
                    Some(t) => longest = longest.max(now - t),
                }
                last = Some(now);
                echoed += 1;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(e),
        }
    }
    // A path that never came back is silent from its last echo on.
    if let Some(t) = last {
        longest = longest.max(end.saturating_duration_since(t));
    }
    let sent = sender.join().expect("sender");
    say(&format!(
        "sent {sent} echoed {echoed} longest-gap-ms {}",
        longest.as_millis()
    ));
    Ok(())
}

/// Known traffic for counter tests: every datagram is a flow of its own,
/// so a stateful firewall judges each one. A send the local firewall
/// refuses (EPERM) still counts as sent: the packet met the rules.
fn udp_send(to: &str, count: usize, size: usize) -> std::io::Result<()> {
    let to = addr(to)?;
    let payload = vec![0x5a; size];
    for _ in 0..count {
        let s = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        match s.send_to(&payload, to) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => return Err(e),
        }
    }
    say(&format!("sent {count}"));
    Ok(())
}

fn number(s: &str) -> usize {
    s.parse().unwrap_or_else(|_| usage())
}

/// A raw IPv4 socket of one protocol.
struct Raw(i32);

impl Raw {
    fn new(proto: i32) -> std::io::Result<Self> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, proto) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Raw(fd))
    }

    fn send(&self, dst: Ipv4Addr, payload: &[u8]) -> std::io::Result<()> {
        let sa = sockaddr(dst);
        // SAFETY: valid buffer and sockaddr_in of the right size.
        let n = unsafe {
            libc::sendto(
                self.0,
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Set DF and never fragment locally: a packet larger than the route's
    /// MTU fails its send with EMSGSIZE.
    fn dont_fragment(&self) -> std::io::Result<()> {
        let on: libc::c_int = libc::IP_PMTUDISC_DO;
        // SAFETY: an int option of the right size on our own fd.
        let r = unsafe {
            libc::setsockopt(
                self.0,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receive one packet (with its IPv4 header) or time out.
    fn recv(&self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        let mut pfd = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        if r <= 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: valid buffer.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(Some(buf))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: our own fd.
        unsafe { libc::close(self.0) };
    }
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn ipv4(s: &str) -> std::io::Result<Ipv4Addr> {
    s.parse()
        .map_err(|e| std::io::Error::other(format!("{s}: {e}")))
}

fn raw_listen(proto: i32) -> std::io::Result<()> {
    let r = Raw::new(proto)?;
    ready();
    loop {
        if let Some(p) = r.recv(Duration::from_secs(3600))? {
            if p.len() >= 20 {
                say(&format!(
                    "got {}",
                    Ipv4Addr::new(p[12], p[13], p[14], p[15])
                ));
            }
        }
    }
}

fn raw_send(proto: i32, dst: &str) -> std::io::Result<()> {
    Raw::new(proto)?.send(ipv4(dst)?, b"hostnet-probe")
}

fn ping(dst: &str, size: Option<usize>) -> std::io::Result<()> {
    let dst = ipv4(dst)?;
    let r = Raw::new(libc::IPPROTO_ICMP)?;
    if size.is_some() {
        r.dont_fragment()?;
    }
    let id = (std::process::id() & 0xffff) as u16;
    let mut pkt = vec![8u8, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1];
    match size {
        Some(n) => pkt.extend((0..n).map(|i| i as u8)),
        None => pkt.extend_from_slice(b"hostnet"),
    }
    let sum = checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    let deadline = Instant::now() + TIMEOUT;
    r.send(dst, &pkt)?;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(p) = r.recv(left)? else { break };
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let icmp = &p[ihl..];
        if src == dst && icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == pkt[4..6] {
            if icmp.len() != pkt.len() {
                return Err(std::io::Error::other(format!(
                    "echo reply from {src} has {} bytes, not {}",
                    icmp.len(),
                    pkt.len()
                )));
            }
            say(&format!("reply from {src}"));
            return Ok(());
        }
    }
    Err(std::io::Error::other(format!("no echo reply from {dst}")))
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
