//! What the runtime asks: CNI_COMMAND and the other CNI_* variables.

use crate::error::{codes, CniError};

/// The CNI verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

/// One invocation, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    /// CNI_CONTAINERID (ADD, DEL, CHECK).
    pub container_id: String,
    /// CNI_NETNS: required for ADD and CHECK, optional for DEL.
    pub netns: Option<String>,
    /// CNI_IFNAME (ADD, DEL, CHECK).
    pub ifname: String,
}

/// Reads the invocation through `var` (the environment, or a map in tests).
pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
    let get = |k: &str| var(k).filter(|v| !v.is_empty());
    let command = match get("CNI_COMMAND").as_deref() {
        Some("ADD") => Command::Add,
        Some("DEL") => Command::Del,
        Some("CHECK") => Command::Check,
        Some("VERSION") => Command::Version,
        Some("STATUS") => Command::Status,
        Some("GC") => Command::Gc,
        Some(other) => {
            return Err(invalid(format!(
                "CNI_COMMAND {other:?} is not a CNI command: use ADD, DEL, CHECK, VERSION, STATUS or GC"
            )))
        }
        None => {
            return Err(invalid(
                "CNI_COMMAND is not set: hostnet-cni is a CNI plugin, run by a container runtime with CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS|GC",
            ))
        }
    };
    let per_container = matches!(command, Command::Add | Command::Del | Command::Check);
    let mut inv = Invocation {
        command,
        container_id: String::new(),
        netns: get("CNI_NETNS"),
        ifname: String::new(),
    };
    if !per_container {
        return Ok(inv);
    }
    let verb = command.as_str();
    inv.container_id = get("CNI_CONTAINERID").ok_or_else(|| {
        invalid(format!(
            "CNI_CONTAINERID is not set: {verb} needs the container's ID"
        ))
    })?;
    if !valid_container_id(&inv.container_id) {
        return Err(invalid(format!(
            "CNI_CONTAINERID {:?} is not a container ID: use letters, digits, '_', '.' and '-', starting with a letter or digit",
            inv.container_id
        )));
    }
    inv.ifname = get("CNI_IFNAME")
        .ok_or_else(|| invalid(format!("CNI_IFNAME is not set: {verb} needs the interface name inside the container (e.g. eth0)")))?;
    if !valid_ifname(&inv.ifname) {
        return Err(invalid(format!(
            "CNI_IFNAME {:?} is not a Linux interface name: use 1-15 characters without '/', ':' or spaces, other than '.' and '..'",
            inv.ifname
        )));
    }
    if inv.netns.is_none() && command != Command::Del {
        return Err(invalid(format!(
            "CNI_NETNS is not set: {verb} needs the path of the container's network namespace (e.g. /run/netns/NAME)"
        )));
    }
    Ok(inv)
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(codes::INVALID_ENVIRONMENT, msg)
}

/// The spec's container ID: alphanumeric first, then alphanumerics, `_.-`.
pub fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// What the kernel takes as an interface name.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn inv(pairs: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_vars(|k| map.get(k).cloned())
    }

    const ADD: [(&str, &str); 4] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
    ];

    #[test]
    fn a_complete_add() {
        let i = inv(&ADD).unwrap();
        assert_eq!(i.command, Command::Add);
        assert_eq!(
            (
                i.container_id.as_str(),
                i.netns.as_deref(),
                i.ifname.as_str()
            ),
            ("c0ffee", Some("/run/netns/c1"), "eth0")
        );
    }

    #[test]
    fn missing_or_bad_variables_are_error_4() {
        let without = |k: &str| {
            let pairs: Vec<_> = ADD.iter().copied().filter(|(n, _)| *n != k).collect();
            inv(&pairs).unwrap_err()
        };
        for k in ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let e = without(k);
            assert_eq!(e.code, codes::INVALID_ENVIRONMENT, "{k}");
            assert!(e.msg.contains(k), "{k}: {}", e.msg);
        }
        let mut bad = ADD;
        bad[3] = ("CNI_IFNAME", "a-very-long-interface");
        assert!(inv(&bad).unwrap_err().msg.contains("a-very-long-interface"));
        bad = ADD;
        bad[1] = ("CNI_CONTAINERID", "../x");
        assert_eq!(inv(&bad).unwrap_err().code, codes::INVALID_ENVIRONMENT);
        bad = ADD;
        bad[0] = ("CNI_COMMAND", "UP");
        assert!(inv(&bad).unwrap_err().msg.contains("\"UP\""));
    }

    #[test]
    fn del_may_lack_the_namespace_and_status_needs_nothing() {
        let i = inv(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(i.netns, None);
        for verb in ["STATUS", "VERSION", "GC"] {
            assert!(inv(&[("CNI_COMMAND", verb)]).is_ok(), "{verb}");
        }
    }
}
