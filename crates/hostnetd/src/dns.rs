//! The seam between the service and the gateway DNS proxy: every change of
//! networks or endpoints becomes the proxy's new set of zones.

use hostnet_core::{DnsNetwork, DnsObserver};
use hostnet_dns::{Host, Proxy, Zone};

/// The proxy, as the service's DNS observer.
pub struct ProxyObserver(pub Proxy);

impl DnsObserver for ProxyObserver {
    fn networks_changed(&self, networks: &[DnsNetwork]) {
        let zones: Vec<Zone> = networks.iter().map(zone).collect();
        self.0.update(&zones);
    }
}

fn zone(n: &DnsNetwork) -> Zone {
    Zone {
        network: hostnet_model::format_guid(&n.id),
        listen: n.gateway,
        domain: n.domain.clone(),
        hosts: n
            .endpoints
            .iter()
            .map(|e| Host {
                name: e.name.clone(),
                address: e.address,
                domain: e.domain.clone(),
            })
            .collect(),
    }
}
