//! A DHCPv4 client for hostnet's endpoints on the physical network
//! (Transparent networks without subnets).
//!
//! The endpoint's address is leased at create time, before the endpoint is
//! attached to a namespace, so the client does not use an interface of its
//! own: it speaks Ethernet on the network's adapter through a raw socket,
//! from the endpoint's MAC (source and `chaddr`), asking for broadcast
//! answers while it has no address, and answering ARP for the leased
//! address while it waits for a server's unicast answer.
//!
//! - [`lease`]: a lease and its timing (T1, T2, expiry, retries); pure.
//! - [`message`]: the DHCP messages (on `dhcproto`); pure.
//! - [`frame`]: Ethernet, IPv4, UDP and ARP framing; pure.
//! - [`client`]: DORA, renew, rebind, release over any [`Link`], with
//!   retransmission and backoff.
//! - [`socket`]: the Linux [`Link`], an `AF_PACKET` socket.

pub mod client;
pub mod frame;
pub mod lease;
pub mod message;
pub mod socket;

pub use client::{mac_string, unix_now, Client, Error, Link, Settings};
pub use lease::{Lease, Step};
pub use socket::PacketLink;

/// A client on interface `ifname` of the calling thread's namespace.
pub fn open(ifname: &str, mac: [u8; 6], settings: Settings) -> Result<Client<PacketLink>, Error> {
    Ok(Client::new(PacketLink::open(ifname)?, mac, settings))
}
