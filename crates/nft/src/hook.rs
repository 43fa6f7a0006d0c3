//! How hostnet hooks a device on the netdev rules it gets.
//!
//! Two designs, the kernel's abilities choose ([`HookDesign`]).
//!
//! **A base chain per device** ([`HookDesign::ChainPerDevice`]):
//! A device's frames pay for a netdev chain only while the device is
//! hooked on it, so hostnet hooks each device it filters (an endpoint's
//! port, an L2 uplink, a DSR client) on a base chain of its own, named
//! after the device and the rules it gets ([`chain_name`]). That chain
//! holds one rule, `goto` the regular chain with the rules (a `SetElement`
//! with [`Data::Device`]'s `set`), which every such device shares.
//!
//! Why not one base chain listing all its devices: Linux 6.1 (Debian 12)
//! neither hooks a device that does not exist nor changes an existing
//! chain's devices (a `NEWCHAIN` naming other devices is `EEXIST`), so
//! every endpoint would reload the chain; only 6.16 and later keep hooks by
//! name and update the list in place. A chain per device is created with
//! its device, in the same batch as the device's other elements, and
//! behaves alike on both: on 6.1 the kernel deletes it with its device (and
//! hostnet's own delete then finds nothing, which it skips), on 6.16+ it
//! stays, hooked on nothing, until hostnet deletes it. At start-up only
//! devices that exist get their chains ([`crate::tables`] is given only
//! those); the others are hooked once they are made.
//!
//! **One base chain per rule set listing its devices**
//! ([`HookDesign::DeviceList`], Linux 6.16 and later): `rules/_egress` (or
//! `_ingress`, [`list_chain_name`]) holds the same one `goto` rule and is
//! hooked on every device of that rule set; hooking a device adds it to
//! the chain's list (`NEWCHAIN` naming the device), unhooking removes it
//! (`DELCHAIN` naming the device). The kernel keeps such hooks by name, for
//! devices that do not exist yet too, so the table holds a handful of base
//! chains whatever the number of endpoints: every commit walks every chain
//! of the table and a `goto` rule's commit validates every base chain, so
//! a chain per device made each endpoint's batch dearer by the endpoints
//! already present (docs/benchmarks.md, "Hooking devices"). A frame pays
//! exactly what it pays with a chain per device: one `goto`.
//!
//! [`Data::Device`]: crate::Data::Device

use std::fmt::Write;

use crate::{NetdevHook, SetElement};

/// How device elements become hooks; probed from the kernel at start-up
/// (the dataplane's `hook_design`), never from its version number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HookDesign {
    /// A base chain per device: what every kernel hostnet supports.
    #[default]
    ChainPerDevice,
    /// One base chain per rule set and hook, its device list changed in
    /// place: for kernels that hook devices by name and update a chain's
    /// devices (Linux 6.16+).
    DeviceList,
}

impl HookDesign {
    /// A short name for logs and benchmark reports.
    pub fn describe(self) -> &'static str {
        match self {
            HookDesign::ChainPerDevice => "a base chain per device",
            HookDesign::DeviceList => {
                "one base chain per rule set, its device list updated in place"
            }
        }
    }
}

/// The priority of every hostnet netdev base chain.
pub const PRIORITY: i32 = 0;

/// The base chain hooking `device` on the rules of chain `rules`:
/// `rules/device`, the device escaped to what nft's parser takes as a
/// chain name (letters, digits, `.` and `-` as they are; every other byte,
/// `_` included, as `_` and two hex digits). `/` never occurs in a rules
/// chain's name or an escaped device, so no two pairs share a name.
pub fn chain_name(rules: &str, device: &str) -> String {
    let mut name = format!("{rules}/");
    for b in device.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => name.push(b as char),
            _ => name.push_str(&format!("_{b:02x}")),
        }
    }
    name
}

/// The rules chain and device of a base chain named by [`chain_name`],
/// or None if `name` is not one (a skeleton chain).
pub fn parse_chain_name(name: &str) -> Option<(&str, String)> {
    let (rules, escaped) = name.split_once('/')?;
    let mut device = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.bytes();
    while let Some(b) = bytes.next() {
        if b != b'_' {
            device.push(b);
            continue;
        }
        let hex = [bytes.next()?, bytes.next()?];
        let hex = std::str::from_utf8(&hex).ok()?;
        device.push(u8::from_str_radix(hex, 16).ok()?);
    }
    Some((rules, String::from_utf8(device).ok()?))
}

/// The element hooking `device` at `hook` on rules chain `rules` of
/// netdev table `table`: what a base chain found in the kernel stands for.
pub fn device_element(
    table: &'static str,
    rules: &'static str,
    hook: NetdevHook,
    device: &str,
) -> SetElement {
    SetElement {
        family: crate::Family::Netdev,
        table,
        set: rules,
        key: crate::ruleset::ifname(device),
        key_end: None,
        data: Some(crate::Data::Device(hook)),
        text: format!("\"{device}\""),
    }
}

/// The base chain listing every device hooked on chain `rules` at `hook`
/// ([`HookDesign::DeviceList`]): `rules/_egress` or `rules/_ingress`.
/// [`chain_name`] never makes `_` followed by a letter past `f`, so the two
/// designs' names never meet.
pub fn list_chain_name(rules: &str, hook: NetdevHook) -> String {
    format!("{rules}/_{}", hook.keyword())
}

/// The rules chain and hook of a base chain named by [`list_chain_name`],
/// or None if `name` is not one.
pub fn parse_list_chain_name(name: &str) -> Option<(&str, NetdevHook)> {
    let (rules, hook) = name.split_once('/')?;
    match hook {
        "_egress" => Some((rules, NetdevHook::Egress)),
        "_ingress" => Some((rules, NetdevHook::Ingress)),
        _ => None,
    }
}

/// The device of a [`crate::Data::Device`] element, as the kernel names it.
pub fn device(e: &SetElement) -> String {
    let name = String::from_utf8_lossy(&e.key);
    name.trim_end_matches('\0').to_string()
}

/// The base chain of a device element: its name and hook, or None if `e`
/// is a set element.
pub fn chain_of(e: &SetElement) -> Option<(String, NetdevHook)> {
    base_chain_of(e, HookDesign::ChainPerDevice)
}

/// The base chain that hooks a device element in `design`: its name and
/// hook, or None if `e` is a set element.
pub fn base_chain_of(e: &SetElement, design: HookDesign) -> Option<(String, NetdevHook)> {
    let hook = e.device_hook()?;
    let name = match design {
        HookDesign::ChainPerDevice => chain_name(e.set, &device(e)),
        HookDesign::DeviceList => list_chain_name(e.set, hook),
    };
    Some((name, hook))
}

/// Where a list chain hooks: table, rules chain, hook.
type HookPoint<'a> = (&'a str, &'a str, NetdevHook);

/// `nft -f` text hooking the device elements of `elements` in `design`
/// (set elements are left out): a chain per device, or one chain per rule
/// set listing them all, each with its one rule.
pub fn chains_text(elements: &[SetElement], design: HookDesign) -> String {
    let devices = elements.iter().filter(|e| e.device_hook().is_some());
    match design {
        HookDesign::ChainPerDevice => devices.map(chain_text).collect(),
        HookDesign::DeviceList => {
            let mut lists: Vec<(HookPoint, Vec<String>)> = Vec::new();
            for e in devices {
                let key = (e.table, e.set, e.device_hook().expect("a device"));
                let name = format!("\"{}\"", device(e));
                match lists.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, names)) if names.contains(&name) => {}
                    Some((_, names)) => names.push(name),
                    None => lists.push((key, vec![name])),
                }
            }
            let mut s = String::new();
            for ((table, rules, hook), names) in lists {
                let chain = list_chain_name(rules, hook);
                let _ = write!(
                    s,
                    "add chain netdev {table} {chain} {{ type filter hook {} devices = {{ {} }} priority {PRIORITY}; policy accept; }}\nadd rule netdev {table} {chain} goto {rules}\n",
                    hook.keyword(),
                    names.join(", "),
                );
            }
            s
        }
    }
}

/// `nft -f` text creating the base chain of a device element and its one
/// rule (the element must be one: `chain_of` is Some).
pub fn chain_text(e: &SetElement) -> String {
    let (name, hook) = chain_of(e).expect("a device element");
    let table = e.table;
    format!(
        "add chain netdev {table} {name} {{ type filter hook {} device \"{}\" priority {PRIORITY}; policy accept; }}\nadd rule netdev {table} {name} goto {}\n",
        hook.keyword(),
        device(e),
        e.set
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_what_nft_parses_and_escape_the_rest() {
        assert_eq!(
            chain_name("endpoint_inbound", "hnve0123456789"),
            "endpoint_inbound/hnve0123456789"
        );
        assert_eq!(chain_name("to_uplink", "trunk.11"), "to_uplink/trunk.11");
        assert_eq!(chain_name("to_uplink", "a_b c"), "to_uplink/a_5fb_20c");
        // `_` itself is escaped, so an escape cannot be forged.
        assert_ne!(chain_name("x", "a_20"), chain_name("x", "a "));
    }

    #[test]
    fn chain_names_parse_back_to_their_rules_and_device() {
        for (rules, device) in [
            ("endpoint_inbound", "hnve0123456789"),
            ("to_uplink", "a_b c"),
            ("x", "a_20"),
        ] {
            let name = chain_name(rules, device);
            assert_eq!(parse_chain_name(&name), Some((rules, device.to_string())));
        }
        assert_eq!(parse_chain_name("endpoint_inbound"), None);
        assert_eq!(parse_chain_name("x/a_2"), None, "a cut escape");
        let e = crate::endpoint_port("hnve01");
        assert_eq!(
            device_element(e.table, e.set, NetdevHook::Egress, "hnve01"),
            e
        );
    }

    #[test]
    fn a_device_chain_goes_to_the_shared_rules() {
        let e = crate::endpoint_port("hnve01");
        assert_eq!(
            chain_of(&e),
            Some(("endpoint_inbound/hnve01".to_string(), NetdevHook::Egress))
        );
        assert_eq!(
            chain_text(&e),
            "add chain netdev hostnet_egress endpoint_inbound/hnve01 { type filter hook egress device \"hnve01\" priority 0; policy accept; }\nadd rule netdev hostnet_egress endpoint_inbound/hnve01 goto endpoint_inbound\n"
        );
        assert_eq!(chain_of(&crate::nat_source([10, 0, 0, 2].into())), None);
    }

    #[test]
    fn a_device_list_chain_per_rule_set_lists_each_device_once() {
        let elements = vec![
            crate::endpoint_port("hnve01"),
            crate::nat_source([10, 0, 0, 2].into()),
            crate::endpoint_port("hnve02"),
            crate::nat_endpoint_port("hnve03"),
            crate::endpoint_port("hnve01"),
        ];
        assert_eq!(
            chains_text(&elements, HookDesign::DeviceList),
            "add chain netdev hostnet_egress endpoint_inbound/_egress { type filter hook egress devices = { \"hnve01\", \"hnve02\" } priority 0; policy accept; }\n\
             add rule netdev hostnet_egress endpoint_inbound/_egress goto endpoint_inbound\n\
             add chain netdev hostnet_egress nat_endpoint_inbound/_egress { type filter hook egress devices = { \"hnve03\" } priority 0; policy accept; }\n\
             add rule netdev hostnet_egress nat_endpoint_inbound/_egress goto nat_endpoint_inbound\n"
        );
        assert_eq!(
            base_chain_of(&elements[0], HookDesign::DeviceList),
            Some(("endpoint_inbound/_egress".to_string(), NetdevHook::Egress))
        );
        assert_eq!(
            chains_text(&elements[..1], HookDesign::ChainPerDevice),
            chain_text(&elements[0])
        );
    }

    #[test]
    fn list_chain_names_are_no_device_chain_name() {
        // A device chain's `_` is always followed by two hex digits.
        for hook in [NetdevHook::Ingress, NetdevHook::Egress] {
            let list = list_chain_name("x", hook);
            let rest = list.strip_prefix("x/_").unwrap();
            assert!(!rest[..2].chars().all(|c| c.is_ascii_hexdigit()), "{list}");
        }
    }
}
