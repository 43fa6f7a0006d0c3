//! The container's `/etc/resolv.conf`, written from its endpoint's `Dns`.
//!
//! `ServerList` becomes `nameserver` lines (in order: the NAT gateway's
//! proxy comes first unless the endpoint asked otherwise), `Search` the
//! `search` line (the `Domain` when there is no `Search`), `Options` the
//! `options` line. An endpoint without servers gets none: the container
//! then sees the host's file.

use serde_json::Value;

/// The file's text, or `None` when the endpoint names no DNS server.
pub fn render(dns: &Value) -> Option<String> {
    let list = |key: &str| -> Vec<String> {
        dns.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let servers = list("ServerList");
    if servers.is_empty() {
        return None;
    }
    let mut text = String::from("# written by hostnet run from the endpoint's Dns\n");
    for s in &servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    let mut search = list("Search");
    if search.is_empty() {
        if let Some(d) = dns.get("Domain").and_then(Value::as_str).map(str::trim) {
            if !d.is_empty() {
                search.push(d.to_string());
            }
        }
    }
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    let options = list("Options");
    if !options.is_empty() {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn servers_search_and_options() {
        let dns = json!({"Domain":"corp.example","ServerList":["10.88.0.1","192.0.2.53"],"Options":["ndots:2","timeout:1"]});
        assert_eq!(
            render(&dns).unwrap(),
            "# written by hostnet run from the endpoint's Dns\nnameserver 10.88.0.1\nnameserver 192.0.2.53\nsearch corp.example\noptions ndots:2 timeout:1\n"
        );
        let dns = json!({"Domain":"corp.example","Search":["a.example","b.example"],"ServerList":["10.88.0.1"]});
        assert!(render(&dns)
            .unwrap()
            .contains("\nsearch a.example b.example\n"));
    }

    #[test]
    fn no_servers_no_file() {
        assert_eq!(render(&json!({"Domain":"corp"})), None);
        assert_eq!(render(&Value::Null), None);
    }
}
