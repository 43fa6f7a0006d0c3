//! The names one network's proxy answers for, and who may ask.
//!
//! An endpoint named `web` with domain `corp.example` is published as `web.`
//! and `web.corp.example.`; names are case-insensitive. HCN endpoint names
//! are free text, so a name that is not a DNS name (labels of letters,
//! digits, `-` and `_`, 1-63 characters, not starting or ending with `-`,
//! 253 in all) is not published: [`Names::build`] reports it instead.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use hickory_proto::rr::Name;

/// An endpoint as the proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The endpoint's `Name` (may be empty: then only its address counts).
    pub name: String,
    /// Its address on the network.
    pub address: IpAddr,
    /// Its own DNS suffix (`Dns.Domain`), if any.
    pub domain: Option<String>,
}

/// One network's view: where its proxy listens and the endpoints on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The network's ID: names the proxy's listener (and logs).
    pub network: String,
    /// The gateway addresses the proxy binds (port 53): a NAT network's
    /// one, every subnet's of an Overlay network.
    pub listen: Vec<IpAddr>,
    /// The network namespace the addresses live in (an Overlay network's
    /// router); None for the daemon's own.
    pub netns: Option<PathBuf>,
    /// The network's DNS suffix, if any.
    pub domain: Option<String>,
    /// The network's endpoints.
    pub hosts: Vec<Host>,
}

/// A zone turned into lookup tables, kept up to date one host at a time.
#[derive(Clone, Debug, Default)]
pub struct Names {
    forward: HashMap<Name, Vec<IpAddr>>,
    reverse: HashMap<IpAddr, Name>,
    clients: HashSet<IpAddr>,
}

impl Names {
    /// The tables of `zone`, and a message for each endpoint name that
    /// could not be published.
    pub fn build(zone: &Zone) -> (Names, Vec<String>) {
        let mut names = Names::default();
        let mut skipped = Vec::new();
        for host in &zone.hosts {
            skipped.extend(names.insert(zone, host));
        }
        (names, skipped)
    }

    /// Publish `host` of `zone` (whose `hosts` are not read); why a name
    /// of it could not be published, if so.
    pub fn insert(&mut self, zone: &Zone, host: &Host) -> Vec<String> {
        self.clients.insert(host.address);
        let (published, skipped) = published(zone, host);
        // PTR answers with the most specific name.
        if let Some(canonical) = published.last() {
            self.reverse
                .entry(host.address)
                .or_insert_with(|| canonical.clone());
        }
        for name in published {
            let list = self.forward.entry(name).or_default();
            if !list.contains(&host.address) {
                list.push(host.address);
            }
        }
        skipped
    }

    /// Withdraw `host` of `zone`, as it was inserted.
    pub fn remove(&mut self, zone: &Zone, host: &Host) {
        self.clients.remove(&host.address);
        let (published, _) = published(zone, host);
        if published.last() == self.reverse.get(&host.address) {
            self.reverse.remove(&host.address);
        }
        for name in published {
            if let Some(list) = self.forward.get_mut(&name) {
                list.retain(|a| *a != host.address);
                if list.is_empty() {
                    self.forward.remove(&name);
                }
            }
        }
    }

    /// The addresses of a (lower-case, fully qualified) name.
    pub fn addresses(&self, name: &Name) -> Option<&[IpAddr]> {
        self.forward.get(name).map(Vec::as_slice)
    }

    /// The name of an endpoint address.
    pub fn name_of(&self, address: &IpAddr) -> Option<&Name> {
        self.reverse.get(address)
    }

    /// Whether `address` is an endpoint of this network (the only ones
    /// the proxy answers).
    pub fn is_client(&self, address: &IpAddr) -> bool {
        self.clients.contains(address)
    }
}

/// The names `host` is published under in `zone` (its name, then with
/// each domain; the most specific last), and why any could not be.
fn published(zone: &Zone, host: &Host) -> (Vec<Name>, Vec<String>) {
    let mut skipped = Vec::new();
    if host.name.is_empty() {
        return (Vec::new(), skipped);
    }
    let base = match host_name(&host.name) {
        Ok(n) => n,
        Err(why) => {
            skipped.push(format!(
                "endpoint name {:?} on network {} is not published in DNS: {why}",
                host.name, zone.network
            ));
            return (Vec::new(), skipped);
        }
    };
    let mut published = vec![base.clone()];
    for domain in [&host.domain, &zone.domain].into_iter().flatten() {
        match domain_name(domain).and_then(|d| {
            base.clone()
                .append_domain(&d)
                .map_err(|e| format!("{}.{domain}: {e}", host.name))
        }) {
            Ok(full) if !published.contains(&full) => published.push(full),
            Ok(_) => {}
            Err(why) => skipped.push(format!(
                "{:?} with domain {domain:?} is not published: {why}",
                host.name
            )),
        }
    }
    (published, skipped)
}

/// An endpoint name as a fully qualified, lower-case DNS name, or why it
/// is not one.
pub fn host_name(name: &str) -> Result<Name, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    for label in name.split('.') {
        check_label(label)?;
    }
    Name::from_ascii(format!("{}.", name.to_ascii_lowercase())).map_err(|e| e.to_string())
}

fn domain_name(domain: &str) -> Result<Name, String> {
    let domain = domain.trim().trim_end_matches('.');
    for label in domain.split('.') {
        check_label(label)?;
    }
    Name::from_ascii(format!("{}.", domain.to_ascii_lowercase())).map_err(|e| e.to_string())
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label (two dots in a row, or a leading dot)".into());
    }
    if label.len() > 63 {
        return Err(format!("label {label:?} is longer than 63 characters"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{c:?} is not allowed (use letters, digits, '-' and '_')"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} starts or ends with '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn zone(hosts: &[(&str, &str, Option<&str>)]) -> Zone {
        Zone {
            network: "N1".into(),
            listen: vec![ip("10.0.0.1")],
            netns: None,
            domain: Some("net.example".into()),
            hosts: hosts
                .iter()
                .map(|(n, a, d)| Host {
                    name: n.to_string(),
                    address: ip(a),
                    domain: d.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn publishes_name_and_domains() {
        let (names, skipped) = Names::build(&zone(&[
            ("Web", "10.0.0.2", Some("corp.example")),
            ("db", "10.0.0.3", None),
        ]));
        assert!(skipped.is_empty());
        for n in ["web.", "web.corp.example.", "web.net.example."] {
            assert_eq!(
                names.addresses(&name(n)),
                Some(&[ip("10.0.0.2")][..]),
                "{n}"
            );
        }
        assert_eq!(names.addresses(&name("db.")), Some(&[ip("10.0.0.3")][..]));
        assert_eq!(names.addresses(&name("db.corp.example.")), None);
        assert_eq!(
            names.name_of(&ip("10.0.0.3")),
            Some(&name("db.net.example."))
        );
        assert!(names.is_client(&ip("10.0.0.2")));
        assert!(!names.is_client(&ip("10.0.0.1")));
    }

    #[test]
    fn hosts_come_and_go_one_at_a_time() {
        let z = zone(&[]);
        let web = Host {
            name: "web".into(),
            address: ip("10.0.0.2"),
            domain: Some("corp.example".into()),
        };
        let web2 = Host {
            address: ip("10.0.0.3"),
            domain: None,
            ..web.clone()
        };
        let mut names = Names::default();
        assert!(names.insert(&z, &web).is_empty());
        assert!(names.insert(&z, &web2).is_empty());
        assert_eq!(
            names.addresses(&name("web.")),
            Some(&[ip("10.0.0.2"), ip("10.0.0.3")][..])
        );
        names.remove(&z, &web);
        assert_eq!(names.addresses(&name("web.")), Some(&[ip("10.0.0.3")][..]));
        assert_eq!(names.addresses(&name("web.corp.example.")), None);
        assert_eq!(names.name_of(&ip("10.0.0.2")), None);
        assert!(!names.is_client(&ip("10.0.0.2")));
        names.remove(&z, &web2);
        assert!(names.forward.is_empty() && names.reverse.is_empty() && names.clients.is_empty());
    }

    #[test]
    fn names_that_are_not_dns_names_are_reported_not_published() {
        let long = "a".repeat(64);
        let (names, skipped) = Names::build(&zone(&[
            ("my container", "10.0.0.2", None),
            ("-x", "10.0.0.3", None),
            (&long, "10.0.0.4", None),
            ("a..b", "10.0.0.5", None),
            ("ünï", "10.0.0.6", None),
            ("ok_name-1", "10.0.0.7", None),
            ("", "10.0.0.8", None),
        ]));
        assert_eq!(skipped.len(), 5, "{skipped:?}");
        assert!(skipped[0].contains("' ' is not allowed"), "{}", skipped[0]);
        assert_eq!(
            names.addresses(&name("ok_name-1.")).map(|a| a.len()),
            Some(1)
        );
        // Unpublished endpoints are still clients of their network's proxy.
        assert!(names.is_client(&ip("10.0.0.2")) && names.is_client(&ip("10.0.0.8")));
    }
}
