//! The Linux link: an `AF_PACKET` raw socket on one interface of the
//! calling thread's network namespace, filtered in the kernel (classic BPF)
//! to ARP and UDP to port 68, so a busy interface does not flood it.
//!
//! It listens with `ETH_P_ALL`: on a bridge port (a Transparent network's
//! adapter) only such a tap sees the frames, before the bridge takes them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use crate::client::Link;

/// A raw socket bound to one interface.
pub struct PacketLink {
    fd: OwnedFd,
    ifindex: i32,
}

/// Accept ARP, and unfragmented IPv4 UDP to port 68; drop the rest.
fn filter() -> Vec<libc::sock_filter> {
    let s = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LDH_ABS: u16 = 0x28; // ldh [k]
    const LDB_ABS: u16 = 0x30; // ldb [k]
    const LDH_IND: u16 = 0x48; // ldh [x + k]
    const LDXB_MSH: u16 = 0xb1; // ldx 4*([k]&0xf)
    const JEQ: u16 = 0x15; // jeq #k, jt, jf
    const JSET: u16 = 0x45; // jset #k, jt, jf
    const RET: u16 = 0x06; // ret #k
    vec![
        s(LDH_ABS, 0, 0, 12),      // 0: ethertype
        s(JEQ, 8, 0, 0x0806),      // 1: ARP -> accept (10)
        s(JEQ, 0, 8, 0x0800),      // 2: not IPv4 -> drop (11)
        s(LDB_ABS, 0, 0, 23),      // 3: IP protocol
        s(JEQ, 0, 6, 17),          // 4: not UDP -> drop
        s(LDH_ABS, 0, 0, 20),      // 5: flags and fragment offset
        s(JSET, 4, 0, 0x1fff),     // 6: a later fragment -> drop
        s(LDXB_MSH, 0, 0, 14),     // 7: x = IP header length
        s(LDH_IND, 0, 0, 14 + 2),  // 8: UDP destination port
        s(JEQ, 0, 1, 68),          // 9: not 68 -> drop
        s(RET, 0, 0, 0x0004_0000), // 10: accept
        s(RET, 0, 0, 0),           // 11: drop
    ]
}

impl PacketLink {
    /// A socket on interface `ifname`.
    pub fn open(ifname: &str) -> io::Result<Self> {
        let name = CString::new(ifname).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: if_nametoindex reads a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {ifname} does not exist"),
            ));
        }
        // Protocol 0 receives nothing until bound, so no frame slips in
        // before the filter is attached.
        // SAFETY: plain socket call; the fd is owned right after.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let prog = filter();
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut _,
        };
        // SAFETY: the program outlives the call; the kernel copies it.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let sll = sockaddr(ifindex, (libc::ETH_P_ALL as u16).to_be(), None);
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketLink { fd, ifindex })
    }
}

fn sockaddr(ifindex: i32, protocol_be: u16, dst: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex;
    if let Some(mac) = dst {
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
    }
    sll
}

impl Link for PacketLink {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let dst: [u8; 6] = frame[..6].try_into().expect("six bytes");
        let proto = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        let sll = sockaddr(self.ifindex, proto, Some(dst));
        // SAFETY: frame and sll are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                continue;
            }
            let mut buf = vec![0u8; 2048];
            // SAFETY: see sockaddr; zeroed is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and from are valid for their lengths.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) {
                    continue;
                }
                return Err(e);
            }
            // Our own frames (and others leaving the port) come back as
            // PACKET_OUTGOING on a tap: not answers.
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
    }
}
