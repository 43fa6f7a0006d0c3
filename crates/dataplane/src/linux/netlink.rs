//! A minimal synchronous netlink socket and message builder.
//!
//! hostnet needs a dozen message types and no event subscriptions, so a small
//! hand-written encoder is cheaper to keep correct than a netlink crate whose
//! API churns (and the nftables ones are GPL). Everything here is plain
//! `sendto`/`recv` on an `AF_NETLINK` socket: requests carry `NLM_F_ACK`, the
//! reply is read until the kernel's `NLMSG_ERROR` for that sequence number,
//! and a failure comes back as a [`NetlinkError`] holding the errno and the
//! kernel's extended-ack text and attribute offset when it sent them.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `struct nlmsghdr` is 16 bytes.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLA_F_NESTED`: the attribute holds attributes.
pub const NLA_F_NESTED: u16 = 0x8000;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

/// Socket buffer size asked for: large element batches and link dumps fit.
const SOCKET_BUFFER: libc::c_int = 8 << 20;
/// Largest datagram the kernel sends us (dumps use at most 32 KiB pages;
/// error replies are capped).
const RECV_BUFFER: usize = 256 << 10;
/// A reply that takes longer than this means a protocol bug, not a slow
/// kernel; fail instead of hanging the daemon.
const RECV_TIMEOUT_SECS: libc::time_t = 30;

/// Rounds `len` up to netlink's 4-byte alignment.
pub fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The kernel refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlinkError {
    /// Positive errno.
    pub errno: i32,
    /// The kernel's extended-ack message, if any.
    pub message: Option<String>,
    /// Offset of the offending attribute from the start of the failing
    /// message, if the kernel pointed at one.
    pub offset: Option<u32>,
    /// Sequence number of the failing message.
    pub seq: u32,
}

impl NetlinkError {
    pub(super) fn local(err: io::Error) -> Self {
        Self {
            errno: err.raw_os_error().unwrap_or(libc::EIO),
            message: Some(err.to_string()),
            offset: None,
            seq: 0,
        }
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.errno))?;
        if let Some(m) = &self.message {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetlinkError {}

/// Builds one netlink message: header, fixed family header, attributes.
pub struct Message {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    /// A message of `kind` with `flags` (`NLM_F_REQUEST` is added).
    pub fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set in finish
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends a fixed-size family header (ifinfomsg, nfgenmsg, ...),
    /// padded to alignment.
    pub fn header(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Appends an attribute holding `value`.
    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = u16::try_from(4 + value.len()).expect("attribute longer than 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
        self
    }

    /// Appends a NUL-terminated string attribute.
    pub fn attr_str(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(kind, &bytes)
    }

    /// Appends a native-endian u32 attribute.
    pub fn attr_u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.attr(kind, &value.to_ne_bytes())
    }

    /// Opens a nested attribute; close it with [`Message::end_nest`].
    pub fn begin_nest(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Closes the innermost open nest.
    pub fn end_nest(&mut self) -> &mut Self {
        let start = self.nests.pop().expect("end_nest without begin_nest");
        // nla_len is 16 bits: a longer nest would wrap and the kernel would
        // parse garbage. Callers split their messages below this.
        let len = u16::try_from(self.buf.len() - start)
            .expect("nested attribute longer than 64 KiB: split the message");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    /// Bytes written so far: the offset the next attribute will have from
    /// the start of the message (how the kernel's extack offsets count).
    pub fn offset(&self) -> usize {
        self.buf.len()
    }

    /// Sets length and sequence number and returns the wire bytes.
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        assert!(self.nests.is_empty(), "unclosed nested attribute");
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }

    fn pad(&mut self) {
        let aligned = align(self.buf.len());
        self.buf.resize(aligned, 0);
    }
}

/// One received message: its type, flags and payload after the header.
pub struct Reply<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Iterates over the attributes in `data` as `(type without flags, value)`.
pub fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & !(NLA_F_NESTED | 0x4000);
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[align(len).min(data.len())..];
        Some((kind, value))
    })
}

/// A bound `AF_NETLINK` socket. It stays in the network namespace of the
/// thread that opened it, whichever thread uses it later.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    /// Opens and binds a socket of `protocol` (`NETLINK_ROUTE`,
    /// `NETLINK_NETFILTER`) in the calling thread's network namespace.
    pub fn open(protocol: libc::c_int) -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let socket = Self {
            fd,
            seq: initial_seq(),
            buf: vec![0; RECV_BUFFER],
        };
        socket.configure()?;
        Ok(socket)
    }

    fn configure(&self) -> io::Result<()> {
        // Big buffers; the *FORCE variants need CAP_NET_ADMIN, which the
        // daemon has, the plain ones are the fallback (capped by rmem_max).
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            if self
                .setsockopt(libc::SOL_SOCKET, force, SOCKET_BUFFER)
                .is_err()
            {
                self.setsockopt(libc::SOL_SOCKET, plain, SOCKET_BUFFER)?;
            }
        }
        // Extended acks give error text and the offending attribute; capped
        // acks keep the kernel from echoing whole batches back on errors.
        // Both are best effort (old kernels lack them).
        let _ = self.setsockopt(libc::SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let _ = self.setsockopt(libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        self.setsockopt_raw(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 lets the kernel pick.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn setsockopt(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        self.setsockopt_raw(level, name, &value)
    }

    fn setsockopt_raw<T>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: &T,
    ) -> io::Result<()> {
        // SAFETY: value points to a live T of the length passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                value as *const T as *const libc::c_void,
                size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next sequence number.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request (which should carry `NLM_F_ACK`) and waits for its
    /// ack. Data replies before the ack are passed to `on_reply`.
    pub fn request(
        &mut self,
        msg: Message,
        mut on_reply: impl FnMut(&Reply<'_>),
    ) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        self.send(&msg.finish(seq)).map_err(NetlinkError::local)?;
        let mut result = None;
        self.receive_until(|reply| {
            if reply.seq != seq {
                return false;
            }
            match reply.kind {
                NLMSG_ERROR => {
                    result = Some(parse_error(reply));
                    true
                }
                _ => {
                    on_reply(reply);
                    false
                }
            }
        })
        .map_err(NetlinkError::local)?;
        result.expect("receive_until returned without an ack")
    }

    /// Sends a dump request (`NLM_F_DUMP` set by the caller) and passes each
    /// part to `on_reply` until `NLMSG_DONE`. Returns `Ok(false)` if the
    /// kernel flagged the dump as interrupted (state changed mid-dump): the
    /// caller should discard what it collected and ask again.
    pub fn dump(
        &mut self,
        msg: Message,
        mut on_reply: impl FnMut(&Reply<'_>),
    ) -> Result<bool, NetlinkError> {
        let seq = self.next_seq();
        self.send(&msg.finish(seq)).map_err(NetlinkError::local)?;
        let mut outcome = Ok(true);
        let mut consistent = true;
        self.receive_until(|reply| {
            if reply.seq != seq {
                return false;
            }
            if reply.flags & NLM_F_DUMP_INTR != 0 {
                consistent = false;
            }
            match reply.kind {
                NLMSG_DONE => {
                    let errno = reply
                        .payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                    if errno < 0 {
                        outcome = Err(NetlinkError {
                            errno: -errno,
                            message: None,
                            offset: None,
                            seq,
                        });
                    }
                    true
                }
                NLMSG_ERROR => {
                    outcome = parse_error(reply).map(|()| true);
                    true
                }
                _ => {
                    on_reply(reply);
                    reply.flags & NLM_F_MULTI == 0
                }
            }
        })
        .map_err(NetlinkError::local)?;
        outcome.map(|done| done && consistent)
    }

    /// Sends several concatenated messages in one datagram (an nfnetlink
    /// batch) and collects the ack or error for each sequence number in
    /// `acked`. An error for `framing` (the batch-begin message) means the
    /// kernel rejected the batch as a whole; it is returned alone.
    pub fn batch(
        &mut self,
        bytes: &[u8],
        framing: u32,
        acked: &[u32],
    ) -> io::Result<Vec<(u32, Result<(), NetlinkError>)>> {
        self.send(bytes)?;
        let mut results = Vec::with_capacity(acked.len());
        self.receive_until(|reply| {
            if reply.kind != NLMSG_ERROR {
                return false;
            }
            if reply.seq == framing {
                results.push((reply.seq, parse_error(reply)));
                return true;
            }
            if !acked.contains(&reply.seq) {
                return false;
            }
            results.push((reply.seq, parse_error(reply)));
            results.len() == acked.len()
        })?;
        Ok(results)
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl addresses the kernel (pid 0).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: bytes and addr are valid for the lengths passed.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr() as *const libc::c_void,
                    bytes.len(),
                    0,
                    &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                    size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Receives datagrams and feeds each message to `handle` until it
    /// returns true.
    fn receive_until(&mut self, mut handle: impl FnMut(&Reply<'_>) -> bool) -> io::Result<()> {
        loop {
            let n = self.recv()?;
            let mut data = &self.buf[..n];
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                if len < NLMSG_HDRLEN || len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed netlink message from the kernel",
                    ));
                }
                let reply = Reply {
                    kind: u16::from_ne_bytes([data[4], data[5]]),
                    flags: u16::from_ne_bytes([data[6], data[7]]),
                    seq: u32::from_ne_bytes([data[8], data[9], data[10], data[11]]),
                    payload: &data[NLMSG_HDRLEN..len],
                };
                if handle(&reply) {
                    return Ok(());
                }
                data = &data[align(len).min(data.len())..];
            }
        }
    }

    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for writes of its length.
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    0,
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no reply from the kernel over netlink",
                    ))
                }
                _ => return Err(err),
            }
        }
    }
}

/// Starting sequence number: distinct per socket so that stale replies
/// from a previous socket are never mistaken for ours.
fn initial_seq() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_secs() as u32) ^ now.subsec_nanos()
}

/// Decodes an `NLMSG_ERROR` payload: `struct nlmsgerr` (errno and the
/// echoed request header, or the whole request when not capped) followed by
/// extended-ack attributes when `NLM_F_ACK_TLVS` is set.
fn parse_error(reply: &Reply<'_>) -> Result<(), NetlinkError> {
    let p = reply.payload;
    if p.len() < 4 {
        return Err(NetlinkError::local(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink error message",
        )));
    }
    let errno = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
    if errno == 0 {
        return Ok(());
    }
    let mut err = NetlinkError {
        errno: -errno,
        message: None,
        offset: None,
        seq: reply.seq,
    };
    if reply.flags & NLM_F_ACK_TLVS != 0 && p.len() >= 4 + NLMSG_HDRLEN {
        let echoed = if reply.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align(u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as usize)
        };
        let tlvs = p.get(4 + echoed..).unwrap_or_default();
        for (kind, value) in attributes(tlvs) {
            match kind {
                NLMSGERR_ATTR_MSG => {
                    let text = value.split(|&b| b == 0).next().unwrap_or_default();
                    err.message = Some(String::from_utf8_lossy(text).into_owned());
                }
                NLMSGERR_ATTR_OFFS if value.len() >= 4 => {
                    err.offset = Some(u32::from_ne_bytes([value[0], value[1], value[2], value[3]]));
                }
                _ => {}
            }
        }
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout_is_aligned_and_nested() {
        let mut m = Message::new(16, 0);
        m.header(&[1, 2, 3]);
        m.begin_nest(5).attr_str(1, "abc").attr_u32(2, 7).end_nest();
        let bytes = m.finish(9);
        assert_eq!(bytes.len(), 16 + 4 + 4 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 40);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 9);
        let nest = &bytes[20..];
        assert_eq!(u16::from_ne_bytes([nest[0], nest[1]]), 20);
        assert_eq!(u16::from_ne_bytes([nest[2], nest[3]]), 5 | NLA_F_NESTED);
        let inner: Vec<_> = attributes(&nest[4..]).collect();
        assert_eq!(inner[0], (1, &b"abc\0"[..]));
        assert_eq!(inner[1], (2, &7u32.to_ne_bytes()[..]));
    }
}
