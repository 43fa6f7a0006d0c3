//! The cluster's client URLs: `etcd://h1:2379,h2:2379` (or `http://…`).

use crate::Error;

/// Parses a comma-separated list of members into `host:port` strings.
///
/// Accepts `etcd://` or `http://` on the first (or on each) member; a
/// member without a port gets etcd's 2379. `https://` is refused: TLS is not
/// implemented yet.
pub fn parse(urls: &str) -> Result<Vec<String>, Error> {
    let bad = |why: String| Error::Config(format!("{urls:?}: {why}"));
    let mut members = Vec::new();
    for part in urls.split(',') {
        let part = part.trim();
        let rest = if let Some(r) = part.strip_prefix("etcd://") {
            r
        } else if let Some(r) = part.strip_prefix("http://") {
            r
        } else if part.starts_with("https://") {
            return Err(bad(
                "TLS (https://) is not supported yet: reach etcd over plain HTTP on a trusted network".into(),
            ));
        } else if part.contains("://") {
            return Err(bad(format!("{part:?} is not etcd://HOST:PORT")));
        } else {
            part
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad(format!(
                "{part:?} is not a member address: give etcd://HOST:PORT[,HOST:PORT...]"
            )));
        }
        let has_port = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => {
                port.parse::<u16>()
                    .map_err(|_| bad(format!("{port:?} in {part:?} is not a port number")))?;
                true
            }
            _ => false,
        };
        members.push(match has_port {
            true => rest.to_string(),
            false => format!("{rest}:2379"),
        });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_defaults_the_port() {
        assert_eq!(
            parse("etcd://10.0.0.1:2379,10.0.0.2:22379, 10.0.0.3").unwrap(),
            ["10.0.0.1:2379", "10.0.0.2:22379", "10.0.0.3:2379"]
        );
        assert_eq!(
            parse("http://etcd.example:2379/").unwrap(),
            ["etcd.example:2379"]
        );
        assert_eq!(parse("[::1]:2379").unwrap(), ["[::1]:2379"]);
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        for bad in [
            "",
            "etcd://",
            "https://h:2379",
            "unix:///x",
            "etcd://h:notaport",
            "etcd://h/x",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}
