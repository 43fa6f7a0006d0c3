//! A command in a microVM on a hostnet endpoint: the pure and
//! machine-local pieces `hostnet run --isolation vm` (playing the part
//! HCS plays on Windows) and the tier-3 test runner share.
//!
//! hostnetd provides the VM's NIC (a `VmNic` endpoint: a tap on the
//! network's bridge); this crate builds the guest (an initramfs holding
//! busybox and the command, [`initramfs`]), its network configuration from
//! the endpoint ([`GuestNet`]), and qemu's command line ([`qemu`]).

pub mod cpio;
mod guest_net;
pub mod initramfs;
pub mod libs;
pub mod modules;
pub mod qemu;

pub use guest_net::GuestNet;
