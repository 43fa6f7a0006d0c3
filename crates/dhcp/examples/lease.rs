//! Lease, renew, rebind and release an address on an interface, printing
//! each lease: `lease IFNAME [MAC]` (run it inside a test namespace).

fn main() {
    let mut args = std::env::args().skip(1);
    let ifname = args.next().expect("usage: lease IFNAME [MAC]");
    let mac = args.next().map_or([0x02, 0x4d, 0xde, 0xad, 0, 1], |m| {
        let b: Vec<u8> = m
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).expect("hex"))
            .collect();
        b.try_into().expect("six bytes")
    });
    let mut c = hostnet_dhcp::open(&ifname, mac, Default::default()).expect("socket");
    let lease = c.acquire().expect("acquire");
    println!("acquired {lease:?}");
    let lease = c.renew(&lease).expect("renew");
    println!("renewed {lease:?}");
    let lease = c.rebind(&lease).expect("rebind");
    println!("rebound {lease:?}");
    c.release(&lease).expect("release");
    println!("released");
}
