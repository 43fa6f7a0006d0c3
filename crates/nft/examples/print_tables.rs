//! Prints the skeleton with a few elements, for `nft -c -f` checks by hand.
use std::net::Ipv4Addr;

use hostnet_nft::*;

fn main() {
    let mut els = nat_bridge("hnbr1");
    els.extend([
        nat_source(Ipv4Addr::new(10, 0, 0, 2)),
        endpoint_port("hnve1"),
        host_port(&HostPort {
            proto: L4Proto::Tcp,
            host_addr: None,
            host_port: 8080,
            target: Ipv4Addr::new(10, 0, 0, 2),
            target_port: 80,
        }),
        host_port(&HostPort {
            proto: L4Proto::Udp,
            host_addr: Some(Ipv4Addr::new(192, 0, 2, 1)),
            host_port: 53,
            target: Ipv4Addr::new(10, 0, 0, 2),
            target_port: 53,
        }),
    ]);
    print!("{}", tables(&els));
}
