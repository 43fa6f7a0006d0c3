//! `hostnet version`: the client's version, then the daemon's.

use crate::error::CliError;
use crate::output::emit;
use hostnet_api::{Client, VersionInfo};

/// Prints both versions; the client part is printed even when the daemon
/// cannot be reached (the error then follows on stderr).
pub fn run(client: &Client) -> Result<u8, CliError> {
    emit(&format!(
        "Client:\n Version:  {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    let server = client.version()?;
    emit(&server_text(&server));
    Ok(0)
}

fn server_text(v: &VersionInfo) -> String {
    let features = v.enabled_features();
    format!(
        "Server:\n Version:  {}\n HNS API:  {}.{}\n Features: {}\n",
        if v.version.is_empty() {
            "unknown"
        } else {
            &v.version
        },
        v.major,
        v.minor,
        if features.is_empty() {
            "none".to_string()
        } else {
            features.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text() {
        let v = VersionInfo {
            major: 15,
            minor: 5,
            version: "0.1.0".into(),
            features: json!({"DSR": true, "L4Proxy": false, "SetPolicy": true}),
        };
        assert_eq!(
            server_text(&v),
            "Server:\n Version:  0.1.0\n HNS API:  15.5\n Features: DSR, SetPolicy\n"
        );
    }
}
