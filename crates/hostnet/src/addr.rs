//! Checks of address arguments, so mistakes are reported by the CLI with the
//! flag that carried them rather than as a schema error from the daemon.

use std::net::IpAddr;

/// Accepts a MAC address in either HCN spelling (`00-15-5D-52-C0-00` or
/// `00:15:5d:52:c0:00`) and returns it unchanged.
pub fn check_mac<'a>(what: &str, mac: &'a str) -> Result<&'a str, String> {
    let sep = if mac.contains('-') { '-' } else { ':' };
    let octets: Vec<&str> = mac.split(sep).collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(mac)
    } else {
        Err(format!(
            "invalid {what} {mac:?}: expected a MAC address such as 00-15-5D-52-C0-00"
        ))
    }
}

/// Parses an IP address argument.
pub fn parse_ip(what: &str, ip: &str) -> Result<IpAddr, String> {
    ip.trim()
        .parse()
        .map_err(|_| format!("invalid {what} {ip:?}: not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert!(check_mac("mac", "00-15-5D-52-C0-00").is_ok());
        assert!(check_mac("mac", "00:15:5d:3a:1c:07").is_ok());
        assert!(check_mac("mac", "00:15:5d:3a:1c").is_err());
        assert!(check_mac("mac", "00-15-5D:52-C0-00").is_err());
        assert!(check_mac("mac", "0g:15:5d:3a:1c:07").is_err());
    }

    #[test]
    fn ips() {
        assert!(parse_ip("--ip", "10.0.0.2").is_ok());
        assert!(parse_ip("--ip", "fd00::2").is_ok());
        assert_eq!(
            parse_ip("--ip", "10.0.0.300").unwrap_err(),
            "invalid --ip \"10.0.0.300\": not an IP address"
        );
    }
}
