//! DNS settings of endpoints, and what the gateway DNS proxy is told.
//!
//! An endpoint's `Dns` is its own fields over its network's, field by field
//! (`Domain`, `Search`, `ServerList`, `Options`). On a NAT network the
//! gateway runs a DNS proxy, and its address is put first in every
//! endpoint's `ServerList` (last with the endpoint flag
//! `OverrideDnsServerOrder`, 16), as Windows does; the network policy
//! `{"Type":"AutomaticDNS","Settings":{"Enable":false}}` (docker's
//! `disable_gatewaydns`) turns both off. An Overlay network gets the same
//! only when it asks (`AutomaticDNS` `Enable: true`, which docker's
//! overlay driver sends): every subnet's gateway answers, inside the
//! network's router namespace, for its local endpoints, its remote
//! endpoints and, in cluster mode, the other hosts' endpoints.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};

use hostnet_model::domain::{DnsSettings, EndpointFlags, NetworkKind, NetworkPolicy};
use hostnet_model::wire;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::object::Kind;
use crate::service::{EndpointRec, NetworkRec, Service, State};

/// A network whose gateway answers DNS, and the names on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsNetwork {
    /// The network's ID.
    pub id: Uuid,
    /// The gateway addresses the proxy answers on.
    pub gateways: Vec<IpAddr>,
    /// The namespace they live in (an Overlay network's router); None for
    /// the daemon's own.
    pub netns: Option<PathBuf>,
    /// The network's `Dns.Domain`.
    pub domain: Option<String>,
    /// Its endpoints.
    pub endpoints: Vec<DnsEndpoint>,
}

/// An endpoint as DNS knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsEndpoint {
    /// The endpoint's `Name`.
    pub name: String,
    /// Its address (an A record).
    pub address: IpAddr,
    /// A dual-stack endpoint's IPv6 address (an AAAA record).
    pub address6: Option<IpAddr>,
    /// Its `Dns.Domain`.
    pub domain: Option<String>,
}

/// Told what names the DNS-serving networks hold: the whole set once when
/// registered (and again when a network appears, goes or changes its DNS
/// settings), then one endpoint at a time, so an endpoint change costs the
/// same with ten endpoints or ten thousand. Called with the service's lock
/// held, so calls arrive in order: keep them short and do not call the
/// service back.
pub trait DnsObserver: Send + Sync {
    /// The networks whose gateway answers DNS now, with their endpoints.
    fn networks_changed(&self, networks: &[DnsNetwork]);
    /// `endpoint` joined `network` (one of the networks last told).
    fn endpoint_added(&self, network: &DnsNetwork, endpoint: &DnsEndpoint);
    /// `endpoint`, as told before, left `network`.
    fn endpoint_removed(&self, network: &DnsNetwork, endpoint: &DnsEndpoint);
}

/// What the observer was last told: the networks (without endpoints) and
/// each endpoint with its network, to turn a change into a delta.
#[derive(Default)]
pub(crate) struct Told {
    networks: BTreeMap<Uuid, DnsNetwork>,
    endpoints: BTreeMap<Uuid, (Uuid, DnsEndpoint)>,
}

impl Service {
    /// Register the observer (the DNS proxy) and tell it the current state.
    pub fn observe_dns(&self, observer: Arc<dyn DnsObserver>) {
        let st = self.lock();
        *self.dns_observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(observer);
        self.tell_all(&st);
    }

    /// Tell the observer, if any, what a change of the object `id` of
    /// `kind` did to the names.
    pub(crate) fn notify_dns(&self, kind: Kind, id: &Uuid) {
        let st = self.lock();
        match kind {
            Kind::Network => {
                let now = st.networks.get(id).and_then(|n| dns_network(id, n));
                let told = self.told().networks.get(id).cloned();
                if now != told {
                    self.tell_all(&st);
                }
            }
            Kind::Endpoint => self.tell_endpoint(&st, id),
            _ => {}
        }
    }

    fn observer(&self) -> Option<Arc<dyn DnsObserver>> {
        self.dns_observer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn told(&self) -> MutexGuard<'_, Told> {
        self.dns_told.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The whole state, and remember it.
    fn tell_all(&self, st: &State) {
        let Some(o) = self.observer() else { return };
        let mut told = Told::default();
        for (id, net) in &st.networks {
            if let Some(n) = dns_network(id, net) {
                told.networks.insert(*id, n);
            }
        }
        for (id, e) in &st.endpoints {
            if told.networks.contains_key(&e.network) {
                told.endpoints.insert(*id, (e.network, dns_endpoint(e)));
            }
        }
        for (id, (network, e)) in st.remote_endpoints.dns_entries() {
            if told.networks.contains_key(&network) {
                told.endpoints.insert(id, (network, e));
            }
        }
        let mut networks = told.networks.clone();
        for (net, e) in told.endpoints.values() {
            if let Some(n) = networks.get_mut(net) {
                n.endpoints.push(e.clone());
            }
        }
        o.networks_changed(&networks.into_values().collect::<Vec<_>>());
        *self.told() = told;
    }

    /// One endpoint's change, as a removal and/or an addition: an
    /// endpoint of this host (local or remote, from the API) or another
    /// host's from the cluster.
    pub(crate) fn tell_endpoint(&self, st: &State, id: &Uuid) {
        let Some(o) = self.observer() else { return };
        let mut told = self.told();
        let now = st
            .endpoints
            .get(id)
            .map(|e| (e.network, dns_endpoint(e)))
            .or_else(|| st.remote_endpoints.dns_entry(id))
            .filter(|(net, _)| told.networks.contains_key(net));
        let before = told.endpoints.get(id).cloned();
        if now == before {
            return;
        }
        if let Some((net, e)) = &before {
            if let Some(n) = told.networks.get(net) {
                o.endpoint_removed(n, e);
            }
            told.endpoints.remove(id);
        }
        if let Some((net, e)) = now {
            if let Some(n) = told.networks.get(&net) {
                o.endpoint_added(n, &e);
            }
            told.endpoints.insert(*id, (net, e));
        }
    }
}

fn dns_endpoint(e: &EndpointRec) -> DnsEndpoint {
    DnsEndpoint {
        name: e.name.clone(),
        address: e.plan.address.addr(),
        address6: e.plan.address6.map(|a| a.addr()),
        domain: e
            .obj
            .get("Dns")
            .and_then(|d| d.get("Domain"))
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(str::to_string),
    }
}

/// A network that serves DNS, without its endpoints.
fn dns_network(id: &Uuid, net: &NetworkRec) -> Option<DnsNetwork> {
    let (gateways, netns) = proxy_place(net)?;
    Some(DnsNetwork {
        id: *id,
        gateways,
        netns,
        domain: net.spec.dns.domain.clone(),
        endpoints: Vec::new(),
    })
}

/// Where a network's gateway DNS proxy answers, if it has one: a NAT
/// network's gateway unless `AutomaticDNS` is disabled (Windows adds the
/// NAT gateway by default); every subnet's gateway of an Overlay network
/// that enables `AutomaticDNS` (off by default: docker's overlay driver
/// asks for it, and Kubernetes' overlay pods use the cluster's DNS only),
/// inside its router namespace, where the gateways live.
fn proxy_place(net: &NetworkRec) -> Option<(Vec<IpAddr>, Option<PathBuf>)> {
    let setting = net.spec.policies.iter().find_map(|p| match p {
        NetworkPolicy::AutomaticDns(on) => Some(*on),
        _ => None,
    });
    match net.kind {
        NetworkKind::Nat if setting != Some(false) => {
            // The IPv4 gateway, also on a dual-stack network.
            let gateway = net
                .pools
                .iter()
                .filter(|p| p.prefix().addr().is_ipv4())
                .find_map(|p| p.gateway())?;
            Some((vec![gateway], None))
        }
        NetworkKind::Overlay if setting == Some(true) => {
            let o = net.overlay.as_ref()?;
            let gateways = o
                .segments
                .iter()
                .map(|s| IpAddr::V4(s.gateway.addr()))
                .collect();
            Some((gateways, Some(o.router.clone())))
        }
        _ => None,
    }
}

/// The proxy address an endpoint at `address` is given: its own subnet's
/// gateway when the proxy answers there, else the proxy's first.
pub(crate) fn gateway_dns(net: &NetworkRec, address: IpAddr) -> Option<IpAddr> {
    let (gateways, _) = proxy_place(net)?;
    net.pools
        .iter()
        .filter(|p| p.contains(address))
        .find_map(|p| p.gateway())
        .filter(|g| gateways.contains(g))
        .or_else(|| gateways.first().copied())
}

/// The endpoint's `Dns` as stored and reported: `own` (the create
/// request's) over the network's, with the gateway proxy's address.
pub(crate) fn endpoint_dns(
    own: &Map<String, Value>,
    net: &NetworkRec,
    address: IpAddr,
) -> Option<Value> {
    let wire_dns: wire::Dns = own
        .get("Dns")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    let own_dns =
        DnsSettings::from_wire(&wire_dns, "Dns", hostnet_model::ErrorCode::InvalidEndpoint)
            .unwrap_or_default();
    let flags = own.get("Flags").and_then(Value::as_u64).unwrap_or(0) as u32;
    let endpoint_first = EndpointFlags(flags).contains(EndpointFlags::OVERRIDE_DNS_ORDER);
    let gateway = gateway_dns(net, address);
    let merged = merge(&own_dns, &net.spec.dns, gateway, endpoint_first);
    let dns = to_wire(&merged);
    (!dns.is_empty()).then(|| serde_json::to_value(dns).unwrap_or(Value::Null))
}

/// Field by field: the endpoint's value when it has one, else the
/// network's; the gateway first in the servers (last when the endpoint's
/// come first).
pub fn merge(
    endpoint: &DnsSettings,
    network: &DnsSettings,
    gateway: Option<IpAddr>,
    endpoint_first: bool,
) -> DnsSettings {
    let pick = |a: &Vec<String>, b: &Vec<String>| if a.is_empty() { b.clone() } else { a.clone() };
    let mut servers = if endpoint.servers.is_empty() {
        network.servers.clone()
    } else {
        endpoint.servers.clone()
    };
    if let Some(gw) = gateway {
        servers.retain(|s| *s != gw);
        match endpoint_first {
            true => servers.push(gw),
            false => servers.insert(0, gw),
        }
    }
    DnsSettings {
        domain: endpoint.domain.clone().or_else(|| network.domain.clone()),
        search: pick(&endpoint.search, &network.search),
        servers,
        options: pick(&endpoint.options, &network.options),
    }
}

fn to_wire(d: &DnsSettings) -> wire::Dns {
    wire::Dns {
        domain: d.domain.clone(),
        search: d.search.clone(),
        server_list: d.servers.iter().map(|s| s.to_string()).collect(),
        options: d.options.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn dns(
        domain: Option<&str>,
        search: &[&str],
        servers: &[&str],
        options: &[&str],
    ) -> DnsSettings {
        DnsSettings {
            domain: domain.map(str::to_string),
            search: search.iter().map(|s| s.to_string()).collect(),
            servers: servers.iter().map(|s| ip(s)).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn endpoint_fields_override_the_networks() {
        let net = dns(
            Some("net.example"),
            &["net.example"],
            &["192.0.2.53"],
            &["ndots:2"],
        );
        let ep = dns(Some("ep.example"), &[], &["198.51.100.53"], &[]);
        let m = merge(&ep, &net, None, false);
        assert_eq!(
            m,
            dns(
                Some("ep.example"),
                &["net.example"],
                &["198.51.100.53"],
                &["ndots:2"]
            )
        );
        assert_eq!(merge(&DnsSettings::default(), &net, None, false), net);
    }

    #[test]
    fn the_gateway_comes_first_unless_the_endpoint_says_otherwise() {
        let net = dns(None, &[], &["192.0.2.53", "10.0.0.1"], &[]);
        let gw = Some(ip("10.0.0.1"));
        let m = merge(&DnsSettings::default(), &net, gw, false);
        assert_eq!(m.servers, [ip("10.0.0.1"), ip("192.0.2.53")]);
        let m = merge(&DnsSettings::default(), &net, gw, true);
        assert_eq!(m.servers, [ip("192.0.2.53"), ip("10.0.0.1")]);
        let m = merge(&DnsSettings::default(), &DnsSettings::default(), gw, false);
        assert_eq!(m.servers, [ip("10.0.0.1")]);
    }
}
