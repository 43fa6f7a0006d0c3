//! The cluster's client URLs: `etcd://h1:2379,h2:2379`, `http://…`, or
//! `https://…` (TLS).

use crate::Error;

/// The members of a cluster and how to reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Members {
    /// `host:port` of each member.
    pub addrs: Vec<String>,
    /// Whether the URLs say `https://`.
    pub tls: bool,
}

/// Parses a comma-separated list of members into `host:port` strings.
///
/// Accepts `etcd://`, `http://` or `https://` on each member (a bare
/// `host:port` takes the scheme before it); a member without a port gets
/// etcd's 2379. One list is all TLS or none.
pub fn parse(urls: &str) -> Result<Members, Error> {
    let bad = |why: String| Error::Config(format!("{urls:?}: {why}"));
    let mut members = Vec::new();
    let mut tls = None;
    for part in urls.split(',') {
        let part = part.trim();
        let (scheme_tls, rest) = if let Some(r) = part.strip_prefix("etcd://") {
            (Some(false), r)
        } else if let Some(r) = part.strip_prefix("http://") {
            (Some(false), r)
        } else if let Some(r) = part.strip_prefix("https://") {
            (Some(true), r)
        } else {
            (None, part)
        };
        if let Some(t) = scheme_tls {
            if tls.is_some_and(|before| before != t) {
                return Err(bad(
                    "mixes https:// and plain members: use one for all".into()
                ));
            }
            tls = Some(t);
        }
        let rest = if rest.contains("://") {
            return Err(bad(format!("{part:?} is not etcd://HOST:PORT")));
        } else {
            rest
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
    Ok(Members {
        addrs: members,
        tls: tls.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_defaults_the_port() {
        let m = parse("etcd://10.0.0.1:2379,10.0.0.2:22379, 10.0.0.3").unwrap();
        assert_eq!(
            m.addrs,
            ["10.0.0.1:2379", "10.0.0.2:22379", "10.0.0.3:2379"]
        );
        assert!(!m.tls);
        assert_eq!(
            parse("http://etcd.example:2379/").unwrap().addrs,
            ["etcd.example:2379"]
        );
        assert_eq!(parse("[::1]:2379").unwrap().addrs, ["[::1]:2379"]);
        let m = parse("https://a:2379,b:2379").unwrap();
        assert_eq!(m.addrs, ["a:2379", "b:2379"]);
        assert!(m.tls);
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        for bad in [
            "",
            "etcd://",
            "https://h:2379,http://g:2379",
            "unix:///x",
            "etcd://h:notaport",
            "etcd://h/x",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}
