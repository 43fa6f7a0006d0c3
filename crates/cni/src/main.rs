//! `hostnet-cni`: run by a container runtime with CNI_* variables set and
//! the network config on stdin; prints the result or error on stdout.

use std::io::{Read, Write};

use hostnet_cni::error::{codes, CniError};
use hostnet_cni::version::Version;
use hostnet_cni::{config, invocation, plugin};

fn main() {
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .read_to_end(&mut stdin)
        .map(drop)
        .map_err(|e| {
            CniError::new(
                codes::IO_FAILURE,
                format!("reading the network config from stdin: {e}"),
            )
        });
    let version = config::version_of(&stdin)
        .filter(|v| Version::parse(v).is_ok())
        .unwrap_or_else(|| Version::LATEST.as_str().to_string());
    let outcome = read
        .and_then(|()| invocation::from_vars(|k| std::env::var(k).ok()))
        .and_then(|inv| plugin::run(&inv, &stdin));
    let mut out = std::io::stdout().lock();
    let code = match outcome {
        Ok(Some(doc)) => {
            let _ = writeln!(out, "{doc}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            let _ = writeln!(out, "{}", e.to_json(&version));
            1
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}
