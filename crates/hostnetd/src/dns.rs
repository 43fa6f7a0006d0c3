//! The seam between the service and the gateway DNS proxy: a change of
//! networks becomes the proxy's new set of zones, an endpoint's change one
//! host added or removed.

use hostnet_core::{DnsEndpoint, DnsNetwork, DnsObserver};
use hostnet_dns::{Host, Proxy, Zone};

/// The proxy, as the service's DNS observer.
pub struct ProxyObserver(pub Proxy);

impl DnsObserver for ProxyObserver {
    fn networks_changed(&self, networks: &[DnsNetwork]) {
        let zones: Vec<Zone> = networks.iter().map(zone).collect();
        self.0.update(&zones);
    }

    fn endpoint_added(&self, network: &DnsNetwork, endpoint: &DnsEndpoint) {
        for h in hosts(endpoint) {
            self.0.add_host(&network_id(network), &h);
        }
    }

    fn endpoint_removed(&self, network: &DnsNetwork, endpoint: &DnsEndpoint) {
        for h in hosts(endpoint) {
            self.0.remove_host(&network_id(network), &h);
        }
    }
}

/// An endpoint's name with each of its addresses: A, and AAAA when it is
/// dual-stack.
fn hosts(e: &DnsEndpoint) -> impl Iterator<Item = Host> + '_ {
    std::iter::once(e.address)
        .chain(e.address6)
        .map(|address| Host {
            name: e.name.clone(),
            address,
            domain: e.domain.clone(),
        })
}

fn network_id(n: &DnsNetwork) -> String {
    hostnet_model::format_guid(&n.id)
}

fn zone(n: &DnsNetwork) -> Zone {
    Zone {
        network: network_id(n),
        listen: n.gateways.clone(),
        netns: n.netns.clone(),
        domain: n.domain.clone(),
        hosts: n.endpoints.iter().flat_map(hosts).collect(),
    }
}
