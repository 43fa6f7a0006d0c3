//! Just enough HTTP/1.1 for one request per connection.
//!
//! The client sends `Connection: close`, so a response ends at its
//! `Content-Length`, at the last chunk of a chunked body, or at EOF. Parsing is
//! over any `BufRead` so it is tested on byte strings as well as on sockets.

use crate::ApiError;
use std::io::{self, BufRead, Read, Write};

/// Longest status or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 128;
/// Largest body accepted (a long list of objects stays well below).
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// An HTTP response: status, headers (names as sent) and the decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 201.
    pub status: u16,
    /// Header fields in order received.
    pub headers: Vec<(String, String)>,
    /// The body with any chunked transfer coding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Writes one request with a JSON body (or none).
pub(crate) fn write_request(
    w: &mut impl Write,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> io::Result<()> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: hostnet-api/{}\r\nAccept: application/json\r\nContent-Type: application/json\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    } else if matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if let Some(body) = body {
        w.write_all(body)?;
    }
    w.flush()
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadResponse(msg.into())
}

/// Reads one line ending in LF (CR stripped); `None` at EOF before any byte.
fn read_line(r: &mut impl BufRead) -> Result<Option<String>, ApiError> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n > MAX_LINE {
            bad("header line too long")
        } else {
            bad("connection closed in the middle of a line")
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| bad("header is not UTF-8"))
}

fn parse_status_line(line: &str) -> Result<u16, ApiError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(bad(format!("not an HTTP/1.x status line: {line:?}")));
    }
    code.parse()
        .map_err(|_| bad(format!("bad status code in {line:?}")))
}

fn read_head(r: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>), ApiError> {
    let status_line = read_line(r)?.ok_or_else(|| bad("connection closed without a response"))?;
    let status = parse_status_line(&status_line)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| bad("connection closed inside the headers"))?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        if headers.len() == MAX_HEADERS {
            return Err(bad("too many header fields"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("malformed header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| bad("connection closed inside a chunked body"))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size =
            u64::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailer fields up to the empty line; EOF is tolerated here.
            while let Some(trailer) = read_line(r)? {
                if trailer.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        r.read_exact(&mut body[start..])
            .map_err(|e| eof_as_bad(e, "connection closed inside a chunk"))?;
        match read_line(r)?.as_deref() {
            Some("") => {}
            _ => return Err(bad("chunk not followed by CRLF")),
        }
    }
}

fn eof_as_bad(e: io::Error, msg: &str) -> ApiError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        bad(msg)
    } else {
        ApiError::Io(e)
    }
}

/// Reads one response to a request made with `method`.
pub(crate) fn read_response(r: &mut impl BufRead, method: &str) -> Result<Response, ApiError> {
    let (status, headers) = loop {
        let (status, headers) = read_head(r)?;
        // Skip interim answers such as 100 Continue.
        if !(100..200).contains(&status) || status == 101 {
            break (status, headers);
        }
    };
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("Transfer-Encoding")
        .and_then(|te| te.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    if chunked {
        response.body = read_chunked(r)?;
    } else if let Some(len) = response.header("Content-Length") {
        let len: u64 = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        if len > MAX_BODY {
            return Err(bad("response body too large"));
        }
        response.body = vec![0; len as usize];
        r.read_exact(&mut response.body)
            .map_err(|e| eof_as_bad(e, "connection closed before the end of the body"))?;
    } else {
        r.take(MAX_BODY + 1).read_to_end(&mut response.body)?;
        if response.body.len() as u64 > MAX_BODY {
            return Err(bad("response body too large"));
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Response, ApiError> {
        read_response(&mut raw.as_bytes(), "GET")
    }

    #[test]
    fn content_length() {
        let r = parse("HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nContent-Length: 9\r\n\r\n{\"ID\":1}\nextra").unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.body, b"{\"ID\":1}\n");
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let r = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n[{\"a\r\nA\r\n\":1},{\"b\":\r\n3\r\n2}]\r\n0\r\nX-Trailer: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"[{\"a\":1},{\"b\":2}]");
    }

    #[test]
    fn read_to_eof_and_bare_lf() {
        let r = parse("HTTP/1.0 200 OK\nServer: x\n\n[]").unwrap();
        assert_eq!(r.body, b"[]");
    }

    #[test]
    fn no_body_statuses_and_interim() {
        let r = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(r.status, 204);
        assert!(r.body.is_empty());
    }

    #[test]
    fn malformed() {
        for raw in [
            "",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(ApiError::BadResponse(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn request_form() {
        let mut out = Vec::new();
        write_request(&mut out, "POST", "/v2/networks", Some(b"{}")).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /v2/networks HTTP/1.1\r\nHost: localhost\r\n"));
        assert!(text.contains("Content-Type: application/json\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
        let mut out = Vec::new();
        write_request(&mut out, "GET", "/v2/version", None).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("Content-Length"));
    }
}
