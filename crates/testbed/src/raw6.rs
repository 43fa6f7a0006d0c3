//! Raw IPv6 for `hostnet-probe`: packets of any protocol and ICMPv6 echo,
//! so the tests show what the firewall defaults do to IPv6 (the IPv4 ones
//! are in the probe itself).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// A raw IPv6 socket of one protocol. Unlike IPv4's, it receives packets
/// without their IP header: the source comes from `recvfrom`.
pub struct Raw6(i32);

impl Raw6 {
    pub fn new(proto: i32) -> std::io::Result<Self> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, proto) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Raw6(fd))
    }

    /// Send from `addr` (an address of this namespace).
    pub fn bind(&self, addr: Ipv6Addr) -> std::io::Result<()> {
        let sa = sockaddr6(addr);
        // SAFETY: a sockaddr_in6 of the right size on our own socket.
        let rc = unsafe {
            libc::bind(
                self.0,
                (&sa as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as u32,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn send(&self, dst: Ipv6Addr, payload: &[u8]) -> std::io::Result<()> {
        let sa = sockaddr6(dst);
        // SAFETY: valid buffer and sockaddr_in6 of the right size.
        let n = unsafe {
            libc::sendto(
                self.0,
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&sa as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as u32,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// One packet's payload and source, or None after `timeout`.
    pub fn recv(&self, timeout: Duration) -> std::io::Result<Option<(Ipv6Addr, Vec<u8>)>> {
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
        let mut from = sockaddr6(Ipv6Addr::UNSPECIFIED);
        let mut len = std::mem::size_of::<libc::sockaddr_in6>() as u32;
        // SAFETY: valid buffer and sockaddr_in6 with its length.
        let n = unsafe {
            libc::recvfrom(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_in6).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(Some((Ipv6Addr::from(from.sin6_addr.s6_addr), buf)))
    }
}

impl Drop for Raw6 {
    fn drop(&mut self) {
        // SAFETY: our own fd.
        unsafe { libc::close(self.0) };
    }
}

fn sockaddr6(ip: Ipv6Addr) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all zeros is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_addr.s6_addr = ip.octets();
    sa
}

/// Print `got SRC` (through `say`) for each IPv6 packet of `proto`, forever.
pub fn listen(proto: i32, ready: impl FnOnce(), say: impl Fn(&str)) -> std::io::Result<()> {
    let r = Raw6::new(proto)?;
    ready();
    loop {
        if let Some((src, _)) = r.recv(Duration::from_secs(3600))? {
            say(&format!("got {src}"));
        }
    }
}

/// Send one IPv6 packet of protocol `proto` to `dst`.
pub fn send(proto: i32, dst: Ipv6Addr) -> std::io::Result<()> {
    Raw6::new(proto)?.send(dst, b"hostnet-probe")
}

/// ICMPv6 echo to `dst`; Ok(()) on a reply within `timeout` (the kernel
/// fills in the ICMPv6 checksum of a raw ICMPv6 socket).
pub fn ping(dst: Ipv6Addr, timeout: Duration) -> std::io::Result<()> {
    let r = Raw6::new(libc::IPPROTO_ICMPV6)?;
    let id = (std::process::id() & 0xffff) as u16;
    let mut pkt = vec![128u8, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1];
    pkt.extend_from_slice(b"hostnet");
    let deadline = Instant::now() + timeout;
    r.send(dst, &pkt)?;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some((src, icmp)) = r.recv(left)? else {
            break;
        };
        if src == dst && icmp.len() >= 8 && icmp[0] == 129 && icmp[4..6] == pkt[4..6] {
            return Ok(());
        }
    }
    Err(std::io::Error::other(format!("no echo reply from {dst}")))
}
