//! A scripted stand-in for `hostnetd` in unit tests: answers each connection
//! with the next canned JSON response and records the requests.

use hostnet_api::Client;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// A running scripted server.
pub struct Script {
    /// A client of it.
    pub client: Client,
    handle: JoinHandle<Vec<(String, Value)>>,
    path: PathBuf,
}

impl Script {
    /// Serves `(status line, JSON body)` pairs, one per connection.
    pub fn serve(answers: Vec<(&'static str, String)>) -> Script {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "hostnet-cli-test-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        len = n.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut request_body = vec![0; len];
                reader.read_exact(&mut request_body).unwrap();
                let target = request_line
                    .split(' ')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                let sent = if request_body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&request_body).unwrap()
                };
                seen.push((target, sent));
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                (&stream).write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        Script {
            client: Client::new(&path),
            handle,
            path,
        }
    }

    /// Stops and returns each request as (`METHOD TARGET`, JSON body or null).
    pub fn finish(self) -> Vec<(String, Value)> {
        let seen = self.handle.join().unwrap();
        let _ = std::fs::remove_file(&self.path);
        seen
    }
}
