//! The CNI verbs, carried out through hostnetd's API.
//!
//! An attachment (container ID and CNI_IFNAME, under one CNI network name)
//! is a hostnet namespace referring to the runtime's netns by path and an
//! endpoint attached to it as CNI_IFNAME, both named
//! [`attachment_name`](crate::translate::attachment_name). hostnetd holds
//! all state; the plugin keeps none.

use std::path::Path;

use hostnet_api::{codes as hcn, ApiError, Client, Kind};
use hostnet_drivers::names;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::{self, NetConf};
use crate::error::{codes, CniError};
use crate::invocation::{Command, Invocation};
use crate::kernel;
use crate::result::prev_result;
use crate::translate::{self, attachment_name, parse_attachment_name};
use crate::version::{supported, Version};

/// Runs one invocation; `Some` is the document to print on stdout.
pub fn run(inv: &Invocation, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if inv.command == Command::Version {
        return Ok(Some(version_document(stdin)));
    }
    let conf = config::parse(stdin)?;
    let client = match &conf.socket {
        Some(path) => Client::new(path),
        None => Client::from_env(),
    };
    let p = Plugin {
        client,
        conf,
        inv: inv.clone(),
    };
    match inv.command {
        Command::Add => p.add().map(Some),
        Command::Del => p.del().map(|()| None),
        Command::Check => p.check().map(|()| None),
        Command::Status => p.status().map(|()| None),
        Command::Gc => p.gc().map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}

/// VERSION: the versions hostnet-cni speaks.
fn version_document(stdin: &[u8]) -> Value {
    let asked = config::version_of(stdin)
        .and_then(|v| Version::parse(&v).ok())
        .unwrap_or(Version::LATEST);
    json!({ "cniVersion": asked.as_str(), "supportedVersions": supported() })
}

struct Plugin {
    client: Client,
    conf: NetConf,
    inv: Invocation,
}

impl Plugin {
    fn name(&self) -> String {
        attachment_name(&self.conf.name, &self.inv.container_id, &self.inv.ifname)
    }

    fn netns(&self) -> &str {
        self.inv.netns.as_deref().unwrap_or_default()
    }

    fn add(&self) -> Result<Value, CniError> {
        let (netns, ifname) = (self.netns(), self.inv.ifname.as_str());
        if !Path::new(netns).exists() {
            return Err(CniError::new(
                codes::UNKNOWN_CONTAINER,
                format!(
                    "CNI_NETNS {netns} does not exist: the container's network namespace is gone"
                ),
            ));
        }
        let existing = kernel::link_in(Path::new(netns), ifname).map_err(|e| {
            CniError::new(
                codes::UNKNOWN_CONTAINER,
                format!("CNI_NETNS {netns} is not a usable network namespace: {e}"),
            )
        })?;
        if existing.is_some() {
            return Err(CniError::new(
                codes::INTERFACE_EXISTS,
                format!("interface {ifname} exists already in {netns}: choose another CNI_IFNAME, or DEL the attachment that made it"),
            ));
        }
        let network = self.ensure_network()?;
        let name = self.name();
        let ep_body = translate::endpoint_body(&self.conf, &id(&network), &name)?;
        let ns = self
            .create_fresh(
                Kind::Namespaces,
                &translate::namespace_body(&name, netns),
                &name,
            )
            .map_err(|e| {
                self.api_error(
                    "registering the container's network namespace with hostnetd",
                    &e,
                )
            })?;
        let attached = self
            .create_fresh(Kind::Endpoints, &ep_body, &name)
            .map_err(|e| CniError::from_api("creating the endpoint", &e))
            .and_then(|ep| {
                self.client
                    .attach_endpoint_as(&id(&ns), &id(&ep), ifname)
                    .map(|()| ep.clone())
                    .map_err(|e| {
                        let _ = self.client.delete(Kind::Endpoints, &id(&ep));
                        CniError::from_api(&format!("attaching the endpoint as {ifname}"), &e)
                    })
            });
        let endpoint = match attached {
            Ok(ep) => ep,
            Err(e) => {
                let _ = self.client.delete(Kind::Namespaces, &id(&ns));
                return Err(e);
            }
        };
        let host = host_veth(&endpoint)?;
        let result = translate::result_of(&endpoint, &host, ifname, netns, None);
        Ok(result.to_json(self.conf.version))
    }

    /// Creates the attachment's object of `kind`. If one of that name
    /// exists, an interrupted ADD left it (CNI_IFNAME is free, checked
    /// before): the leftover attachment is removed (for the namespace,
    /// the first object made, with its endpoint) and the create repeated.
    /// Asking only then keeps ADD at its few round trips.
    fn create_fresh(&self, kind: Kind, body: &Value, name: &str) -> Result<Value, ApiError> {
        match self.client.create(kind, body) {
            Err(e) if e.error_code() == Some(hcn::ERROR_ALREADY_EXISTS) => {
                let kinds: &[Kind] = match kind {
                    Kind::Namespaces => &[Kind::Endpoints, Kind::Namespaces],
                    _ => &[Kind::Endpoints],
                };
                for &k in kinds {
                    if let Some(old) = self.client.find_by_name(k, name)? {
                        match self.client.delete(k, &id(&old)) {
                            Err(e) if !e.is_not_found() => return Err(e),
                            _ => {}
                        }
                    }
                }
                self.client.create(kind, body)
            }
            other => other,
        }
    }

    /// The config's hostnet network, created from the config if missing.
    fn ensure_network(&self) -> Result<Value, CniError> {
        let find = || {
            self.client
                .find_by_name(Kind::Networks, &self.conf.network)
                .map_err(|e| CniError::from_api("looking up the network", &e))
        };
        let network = match find()? {
            Some(n) => n,
            None => match self
                .client
                .create(Kind::Networks, &translate::network_body(&self.conf))
            {
                Ok(n) => n,
                // Another ADD created it meanwhile.
                Err(e) if e.error_code() == Some(hcn::HCN_E_NETWORK_ALREADY_EXISTS) => {
                    find()?.ok_or_else(|| CniError::from_api("creating the network", &e))?
                }
                Err(e) => {
                    return Err(CniError::from_api(
                        &format!("creating network {:?}", self.conf.network),
                        &e,
                    ))
                }
            },
        };
        let kind = network["Type"].as_str().unwrap_or_default();
        if let Some(d) = self
            .conf
            .driver
            .filter(|d| !d.hcn.eq_ignore_ascii_case(kind))
        {
            return Err(CniError::new(
                codes::INVALID_CONFIG,
                format!(
                    "network {:?} exists with driver {kind}, but the config says {}: change \"driver\", or name another \"network\"",
                    self.conf.network, d.cni
                ),
            ));
        }
        Ok(network)
    }

    /// Deletes the attachment's endpoint (hostnetd detaches it, removing
    /// its link and port mappings) and namespace; what is gone already is
    /// fine.
    fn remove_attachment(&self, name: &str) -> Result<(), CniError> {
        for kind in [Kind::Endpoints, Kind::Namespaces] {
            let found = self
                .client
                .find_by_name(kind, name)
                .map_err(|e| CniError::from_api("looking up the attachment", &e))?;
            if let Some(obj) = found {
                match self.client.delete(kind, &id(&obj)) {
                    Err(e) if !e.is_not_found() => {
                        return Err(CniError::from_api(&format!("deleting {name}"), &e))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn del(&self) -> Result<(), CniError> {
        self.remove_attachment(&self.name())
    }

    fn check(&self) -> Result<(), CniError> {
        let v = self.conf.version;
        if !v.has_check() {
            return Err(CniError::new(
                codes::INCOMPATIBLE_VERSION,
                format!(
                    "CHECK needs cniVersion 0.4.0 or later; the config says {}",
                    v.as_str()
                ),
            ));
        }
        let name = self.name();
        let (netns, ifname) = (self.netns(), self.inv.ifname.as_str());
        let failed = |what: String| CniError::new(codes::CHECK_FAILED, format!("{name}: {what}"));
        let endpoint = self
            .client
            .find_by_name(Kind::Endpoints, &name)
            .map_err(|e| CniError::from_api("looking up the endpoint", &e))?
            .ok_or_else(|| {
                failed("hostnetd has no endpoint for this attachment: ADD it again".into())
            })?;
        let ns_id = endpoint["HostComputeNamespace"].as_str().ok_or_else(|| {
            failed("the endpoint is not attached to a namespace: DEL and ADD again".into())
        })?;
        let ns = self
            .client
            .get(Kind::Namespaces, ns_id)
            .map_err(|e| CniError::from_api("looking up the namespace", &e))?;
        let ns_path = ns["NetNsPath"].as_str().unwrap_or_default();
        if !kernel::same_netns(Path::new(ns_path), Path::new(netns)) {
            return Err(failed(format!(
                "the endpoint is attached in {ns_path}, not in CNI_NETNS {netns}"
            )));
        }
        let prev = self
            .conf
            .prev_result
            .as_ref()
            .map(|p| prev_result(p, ifname))
            .unwrap_or_default();
        let expected = translate::result_of(&endpoint, "", ifname, netns, None);
        let ep_addresses: Vec<_> = expected.ips.iter().map(|i| i.address).collect();
        if let Some(a) = prev.addresses.iter().find(|a| !ep_addresses.contains(a)) {
            return Err(failed(format!(
                "prevResult has address {a}, hostnetd's endpoint has {ep_addresses:?}"
            )));
        }
        let link = kernel::link_in(Path::new(netns), ifname)
            .map_err(&failed)?
            .ok_or_else(|| failed(format!("interface {ifname} is missing in {netns}")))?;
        let mac = kernel::mac_text(&link.mac);
        let want_mac = prev.mac.or_else(|| expected.interfaces[1].mac.clone());
        if let Some(want) = want_mac.filter(|w| *w != mac) {
            return Err(failed(format!("{ifname} has MAC {mac}, expected {want}")));
        }
        for a in &ep_addresses {
            if !link.addresses.contains(a) {
                return Err(failed(format!(
                    "{ifname} lacks its address {a} (it has {:?})",
                    link.addresses
                )));
            }
        }
        for r in &expected.routes {
            let present = link
                .routes
                .iter()
                .any(|k| k.destination == r.dst && k.via == r.gw);
            if !present {
                let via = r.gw.map(|g| format!(" via {g}")).unwrap_or_default();
                return Err(failed(format!(
                    "route {}{via} is missing in {netns}",
                    r.dst
                )));
            }
        }
        let host = host_veth(&endpoint)?;
        let bridge = endpoint["HostComputeNetwork"]
            .as_str()
            .and_then(|n| Uuid::parse_str(n).ok())
            .map(|n| names::bridge(&n));
        let host_link = kernel::host_link(&host)
            .map_err(&failed)?
            .ok_or_else(|| failed(format!("the host end {host} of {ifname} is missing")))?;
        if host_link.master != bridge {
            return Err(failed(format!(
                "the host end {host} is on {:?}, not on the network's bridge {bridge:?}",
                host_link.master
            )));
        }
        Ok(())
    }

    fn status(&self) -> Result<(), CniError> {
        self.needs_1_1("STATUS")?;
        match self.client.version() {
            Ok(_) => Ok(()),
            Err(e @ (ApiError::Connect { .. } | ApiError::Io(_))) => Err(CniError::new(
                codes::PLUGIN_NOT_AVAILABLE,
                format!(
                    "hostnetd is not reachable at {} ({e}): start hostnetd; until then no container can be added",
                    self.client.socket().display()
                ),
            )),
            Err(e) => Err(CniError::from_api("asking hostnetd for its version", &e)),
        }
    }

    /// GC: removes this config's attachments the runtime no longer has.
    fn gc(&self) -> Result<(), CniError> {
        self.needs_1_1("GC")?;
        let valid = self.conf.valid_attachments.as_ref().ok_or_else(|| {
            CniError::new(
                codes::INVALID_CONFIG,
                "GC without cni.dev/valid-attachments: the runtime must list the attachments to keep (an empty list removes all)",
            )
        })?;
        let keep = |cid: &str, ifname: &str| {
            valid
                .iter()
                .any(|a| a.container_id == cid && a.ifname == ifname)
        };
        let mut stale = Vec::new();
        for kind in [Kind::Endpoints, Kind::Namespaces] {
            let objects = self
                .client
                .list(kind, None)
                .map_err(|e| CniError::from_api("listing attachments", &e))?;
            for o in objects {
                let name = o["Name"].as_str().unwrap_or_default();
                match parse_attachment_name(&self.conf.name, name) {
                    Some((cid, ifname))
                        if !keep(cid, ifname) && !stale.contains(&name.to_string()) =>
                    {
                        stale.push(name.to_string())
                    }
                    _ => {}
                }
            }
        }
        for name in stale {
            self.remove_attachment(&name)?;
        }
        Ok(())
    }

    fn needs_1_1(&self, verb: &str) -> Result<(), CniError> {
        match self.conf.version.has_status_and_gc() {
            true => Ok(()),
            false => Err(CniError::new(
                codes::INCOMPATIBLE_VERSION,
                format!(
                    "{verb} needs cniVersion 1.1.0; the config says {}",
                    self.conf.version.as_str()
                ),
            )),
        }
    }

    /// A namespace create failing on the path means the container is gone.
    fn api_error(&self, what: &str, e: &ApiError) -> CniError {
        match e.error_code() {
            Some(hcn::ERROR_NOT_FOUND) => {
                CniError::new(codes::UNKNOWN_CONTAINER, format!("{what}: {}", e))
            }
            _ => CniError::from_api(what, e),
        }
    }
}

/// The host end of an endpoint's veth (hostnet names it after the ID).
fn host_veth(endpoint: &Value) -> Result<String, CniError> {
    let raw = endpoint["ID"].as_str().unwrap_or_default();
    Uuid::parse_str(raw.trim_matches(['{', '}']))
        .map(|u| names::host_veth(&u))
        .map_err(|_| {
            CniError::new(
                codes::IO_FAILURE,
                format!("hostnetd returned an endpoint without a valid ID: {raw:?}"),
            )
        })
}

fn id(v: &Value) -> String {
    v["ID"].as_str().unwrap_or_default().to_string()
}
