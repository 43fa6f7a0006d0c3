//! Which windowsshim options apply to which network driver.
//!
//! Windows' docker applies some options to some drivers only (`interface`
//! binds the external switch to an adapter, which a nat network has none of;
//! `enable_outboundnat` is l2bridge's). An option on a driver it does not
//! apply to is refused by name, with the code hostnetd gives for the policy it
//! would become, instead of being passed on and ignored. Drivers the table
//! does not know go to hostnetd unchecked: it names the type it refuses.

use crate::error::with_hcn_code;
use crate::shim::{full_key, ShimOptions};
use hostnet_api::codes::HCN_E_INVALID_POLICY_TYPE;

/// The drivers this table knows (docker's names; `-d` is case-insensitive).
const KNOWN: [&str; 8] = [
    "nat",
    "transparent",
    "l2bridge",
    "l2tunnel",
    "overlay",
    "ics",
    "private",
    "internal",
];

/// The drivers an option applies to, and what it does there; `None` for
/// options every driver takes (`networkname`, `dns*`, `macpool`).
fn applies_to(key: &str) -> Option<(&'static [&'static str], &'static str)> {
    Some(match key {
        "interface" => (
            &["transparent", "l2bridge", "l2tunnel", "overlay"],
            "it binds the network to a host adapter",
        ),
        "teaming_mode" => (
            &["transparent", "l2bridge", "l2tunnel"],
            "it says how a team of host adapters spreads frames",
        ),
        "vlanid" => (
            &["transparent", "l2bridge"],
            "it tags the network's frames on the host adapter",
        ),
        "vsid" => (
            &["overlay", "l2bridge", "l2tunnel"],
            "it is the virtual subnet of an overlay or SDN network",
        ),
        "vxlanid_list" => (
            &["overlay"],
            "it gives each subnet of an overlay network its VNI",
        ),
        "disable_gatewaydns" => (
            &["nat", "overlay"],
            "it turns off the DNS proxy on a NAT or overlay network's gateway",
        ),
        "enable_outboundnat" | "outboundnat_exceptions" => (
            &["l2bridge", "l2tunnel"],
            "it NATs endpoints on the physical network to the host's address",
        ),
        _ => return None,
    })
}

/// Refuses the first option given that `driver` does not take.
pub fn check(options: &ShimOptions, driver: &str) -> Result<(), String> {
    let driver = driver.trim().to_ascii_lowercase();
    if !KNOWN.contains(&driver.as_str()) {
        return Ok(());
    }
    for key in options.given.keys() {
        let Some((drivers, what)) = applies_to(key) else {
            continue;
        };
        if !drivers.contains(&driver.as_str()) {
            return Err(with_hcn_code(
                format!(
                    "option {} does not apply to {driver} networks ({what}; \
                     drivers: {}): remove it or choose one of those drivers",
                    full_key(key),
                    drivers.join(", ")
                ),
                HCN_E_INVALID_POLICY_TYPE,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> ShimOptions {
        ShimOptions::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn everyone_takes_the_common_options() {
        let common = options(&[
            ("networkname", "n"),
            ("dnssuffix", "corp"),
            ("dnsservers", "10.0.0.53"),
            ("macpool", "00-15-5D-00-00-00,00-15-5D-00-0F-FF"),
        ]);
        for driver in KNOWN {
            check(&common, driver).unwrap();
        }
    }

    #[test]
    fn outbound_nat_is_for_l2bridge_and_l2tunnel() {
        let nat = options(&[
            ("enable_outboundnat", "true"),
            ("outboundnat_exceptions", "10.0.0.0/8"),
        ]);
        for driver in ["l2bridge", "L2Bridge", "L2TUNNEL"] {
            check(&nat, driver).unwrap();
        }
        for driver in ["nat", "NAT", "transparent", "overlay"] {
            let err = check(&nat, driver).unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "option com.docker.network.windowsshim.enable_outboundnat does not apply to {} networks",
                    driver.to_ascii_lowercase()
                )),
                "{err}"
            );
            assert!(err.contains("drivers: l2bridge, l2tunnel"), "{err}");
            assert!(
                err.ends_with("(HCN 0x803B000E HCN_E_INVALID_POLICY_TYPE)"),
                "{err}"
            );
        }
        // Refused even when it turns the NAT off: it still does not apply.
        let off = options(&[("enable_outboundnat", "false")]);
        assert!(check(&off, "nat").is_err());
    }

    #[test]
    fn adapter_options_are_not_for_nat() {
        for (key, value, refused_on) in [
            (
                "interface",
                "eth0",
                &["nat", "ics", "private", "internal"][..],
            ),
            (
                "vlanid",
                "11",
                &["nat", "overlay", "l2tunnel", "ics", "private", "internal"],
            ),
            (
                "vsid",
                "4097",
                &["nat", "transparent", "ics", "private", "internal"],
            ),
            (
                "vxlanid_list",
                "4097",
                &[
                    "nat",
                    "transparent",
                    "l2bridge",
                    "l2tunnel",
                    "ics",
                    "private",
                    "internal",
                ],
            ),
        ] {
            let o = options(&[(key, value)]);
            for driver in KNOWN {
                let refused = check(&o, driver).is_err();
                assert_eq!(refused, refused_on.contains(&driver), "{key} on {driver}");
            }
        }
    }

    #[test]
    fn unknown_drivers_are_hostnetds_to_refuse() {
        let o = options(&[("interface", "eth0"), ("enable_outboundnat", "true")]);
        check(&o, "mirrored").unwrap();
        check(&o, "bogus").unwrap();
    }
}
