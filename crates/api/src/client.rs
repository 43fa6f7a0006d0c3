//! A blocking client for `hostnetd`'s REST API over its Unix socket.
//!
//! One connection per request (`Connection: close`): the CLI and the CNI
//! plugin make a handful of calls and exit, so pooling would buy nothing and
//! cost a keep-alive state machine.

use crate::http::{read_response, write_request, Response};
use crate::{
    is_guid, ApiError, ErrorRecord, HostComputeQuery, Kind, Result, VersionInfo, DEFAULT_SOCKET,
    SOCKET_ENV,
};
use serde_json::{json, Value};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default bound on one request (connect excluded); creating an overlay
/// network or a namespace does real kernel work, so it is generous.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A client of `hostnetd` at one socket path.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Option<Duration>,
}

impl Client {
    /// A client of the daemon listening at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            socket: socket.into(),
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// A client of the socket named by `HOSTNET_SOCKET`, else [`DEFAULT_SOCKET`].
    pub fn from_env() -> Self {
        match std::env::var_os(SOCKET_ENV) {
            Some(path) if !path.is_empty() => Client::new(path),
            _ => Client::new(DEFAULT_SOCKET),
        }
    }

    /// The same client with a different read/write timeout (`None`: wait forever).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request and returns the response whatever its status;
    /// errors are only transport errors. Most callers want [`Client::call`].
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        let stream = UnixStream::connect(&self.socket).map_err(|source| ApiError::Connect {
            socket: self.socket.clone(),
            source,
        })?;
        stream.set_read_timeout(self.timeout)?;
        stream.set_write_timeout(self.timeout)?;
        let written = write_request(&mut &stream, method, path, body);
        // A server may answer (an error, say) and close before reading the
        // whole body; its answer then says more than our EPIPE would.
        let response = read_response(&mut BufReader::new(&stream), method);
        match (written, response) {
            (Ok(()), response) => response,
            (Err(_), Ok(response)) => Ok(response),
            (Err(e), Err(_)) => Err(ApiError::Io(e)),
        }
    }

    /// Sends `body` as JSON and returns the JSON answer (`Null` for an empty
    /// body); a non-2xx answer becomes [`ApiError::Hcn`] when it carries an
    /// HCN error record, else [`ApiError::BadResponse`].
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("a JSON value always serializes"));
        let response = self.request(method, path, bytes.as_deref())?;
        if !response.is_success() {
            return Err(error_from(&response));
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| ApiError::BadResponse(format!("{method} {path}: body is not JSON: {e}")))
    }

    /// `POST /v2/<kind>`: creates an object and returns it as stored (with `ID`).
    pub fn create(&self, kind: Kind, object: &Value) -> Result<Value> {
        self.call("POST", &kind.collection_url(), Some(object))
    }

    /// `GET /v2/<kind>[?query=…]`: every object, or those matching `filter`
    /// (a JSON object such as `{"Name":"nat"}`, sent as a HostComputeQuery).
    pub fn list(&self, kind: Kind, filter: Option<&Value>) -> Result<Vec<Value>> {
        let mut url = kind.collection_url();
        if let Some(filter) = filter {
            url.push('?');
            url.push_str(&HostComputeQuery::with_filter(filter).to_query_string());
        }
        match self.call("GET", &url, None)? {
            Value::Array(items) => Ok(items),
            Value::Null => Ok(Vec::new()),
            other => Err(ApiError::BadResponse(format!(
                "GET {url}: expected a JSON array, got {}",
                type_name(&other)
            ))),
        }
    }

    /// `GET /v2/<kind>/<id>`.
    pub fn get(&self, kind: Kind, id: &str) -> Result<Value> {
        self.call("GET", &kind.object_url(id), None)
    }

    /// `DELETE /v2/<kind>/<id>`.
    pub fn delete(&self, kind: Kind, id: &str) -> Result<()> {
        self.call("DELETE", &kind.object_url(id), None).map(drop)
    }

    /// `PATCH /v2/<kind>/<id>` with an HCN modify request; returns the answer
    /// (the modified object, or `Null` when the daemon sends no body).
    pub fn modify(&self, kind: Kind, id: &str, request: &Value) -> Result<Value> {
        self.call("PATCH", &kind.object_url(id), Some(request))
    }

    /// `POST /v2/endpoints/<id>/trace`: walk a packet through the
    /// endpoint's policies (hostnet extension, see docs/api.md).
    pub fn trace(&self, endpoint_id: &str, request: &Value) -> Result<Value> {
        let url = format!("{}/trace", Kind::Endpoints.object_url(endpoint_id));
        self.call("POST", &url, Some(request))
    }

    /// `GET /v2/endpoints/<id>/stats`: the endpoint's counters, HNS's
    /// endpoint statistics and per-ACL-rule counts (see docs/api.md).
    pub fn endpoint_stats(&self, endpoint_id: &str) -> Result<Value> {
        let url = format!("{}/stats", Kind::Endpoints.object_url(endpoint_id));
        self.call("GET", &url, None)
    }

    /// `GET /v2/version`.
    pub fn version(&self) -> Result<VersionInfo> {
        let url = format!("{}/version", crate::API_PREFIX);
        let value = self.call("GET", &url, None)?;
        serde_json::from_value(value)
            .map_err(|e| ApiError::BadResponse(format!("GET {url}: not a version document: {e}")))
    }

    /// The object of `kind` named `name`, if any. Filters on the daemon and
    /// checks `Name` again here; an exact match wins over a case-insensitive one.
    pub fn find_by_name(&self, kind: Kind, name: &str) -> Result<Option<Value>> {
        let found = self.list(kind, Some(&json!({ "Name": name })))?;
        let name_of = |v: &Value| v.get("Name").and_then(Value::as_str).map(str::to_owned);
        let exact = found
            .iter()
            .position(|v| name_of(v).as_deref() == Some(name));
        let index = exact.or_else(|| {
            found
                .iter()
                .position(|v| name_of(v).is_some_and(|n| n.eq_ignore_ascii_case(name)))
        });
        Ok(index.map(|i| found[i].clone()))
    }

    /// The object of `kind` whose ID (if `name_or_id` is a GUID) or name is
    /// `name_or_id`; `None` when there is none.
    pub fn lookup(&self, kind: Kind, name_or_id: &str) -> Result<Option<Value>> {
        if is_guid(name_or_id) {
            match self.get(kind, name_or_id) {
                Ok(object) => return Ok(Some(object)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        self.find_by_name(kind, name_or_id)
    }

    /// Attaches an endpoint to a namespace (HCN modify `Endpoint`/`Add`).
    pub fn attach_endpoint(&self, namespace_id: &str, endpoint_id: &str) -> Result<()> {
        self.modify(
            Kind::Namespaces,
            namespace_id,
            &namespace_endpoint_request("Add", endpoint_id),
        )
        .map(drop)
    }

    /// Attaches an endpoint to a namespace as interface `ifname` inside it
    /// (hostnet's `InterfaceName` setting; CNI's `CNI_IFNAME`).
    pub fn attach_endpoint_as(
        &self,
        namespace_id: &str,
        endpoint_id: &str,
        ifname: &str,
    ) -> Result<()> {
        let mut request = namespace_endpoint_request("Add", endpoint_id);
        request["Settings"]["InterfaceName"] = json!(ifname);
        self.modify(Kind::Namespaces, namespace_id, &request)
            .map(drop)
    }

    /// Detaches an endpoint from a namespace (HCN modify `Endpoint`/`Remove`).
    pub fn detach_endpoint(&self, namespace_id: &str, endpoint_id: &str) -> Result<()> {
        self.modify(
            Kind::Namespaces,
            namespace_id,
            &namespace_endpoint_request("Remove", endpoint_id),
        )
        .map(drop)
    }
}

/// The HCN namespace modify request that adds or removes an endpoint.
fn namespace_endpoint_request(request_type: &str, endpoint_id: &str) -> Value {
    json!({
        "ResourceType": "Endpoint",
        "RequestType": request_type,
        "Settings": { "EndpointId": endpoint_id },
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The error for a non-2xx response.
fn error_from(response: &Response) -> ApiError {
    let value: Option<Value> = serde_json::from_slice(&response.body).ok();
    let is_record = value
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|o| o.contains_key("ErrorCode") || o.contains_key("Error"));
    if is_record {
        if let Ok(record) = serde_json::from_value::<ErrorRecord>(value.unwrap_or_default()) {
            return ApiError::Hcn {
                status: response.status,
                record,
            };
        }
    }
    let text = String::from_utf8_lossy(&response.body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(200).collect();
    ApiError::BadResponse(if text.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        format!("HTTP {}: {text}", response.status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::JoinHandle;

    /// A request as the test server saw it.
    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    fn socket_path() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("hostnet-api-test-{}-{n}.sock", std::process::id()))
    }

    /// Serves each canned response to one connection, in order, and returns
    /// what it received.
    fn serve(responses: Vec<String>) -> (Client, JoinHandle<Vec<Seen>>, PathBuf) {
        let path = socket_path();
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for response in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = std::io::BufReader::new(&stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |n| n.parse().unwrap());
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                (&stream).write_all(response.as_bytes()).unwrap();
                seen.push(Seen { head, body });
            }
            seen
        });
        (Client::new(&path), handle, path)
    }

    /// A response with a correct Content-Length.
    fn json(status: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    }

    fn finish(handle: JoinHandle<Vec<Seen>>, path: PathBuf) -> Vec<Seen> {
        let seen = handle.join().unwrap();
        let _ = std::fs::remove_file(path);
        seen
    }

    #[test]
    fn create_with_content_length() {
        let (client, handle, path) = serve(vec![json(
            "201 Created",
            r#"{"ID":"A1B2C3D4-0000-4000-8000-000000000001","Name":"nat1"}"#,
        )]);
        let created = client
            .create(Kind::Networks, &json!({"Name": "nat1", "Type": "nat"}))
            .unwrap();
        assert_eq!(created["Name"], "nat1");
        let seen = finish(handle, path);
        assert!(seen[0].head.starts_with("POST /v2/networks HTTP/1.1\r\n"));
        assert!(seen[0].head.contains("Host: localhost\r\n"));
        assert_eq!(
            serde_json::from_slice::<Value>(&seen[0].body).unwrap(),
            json!({"Name": "nat1", "Type": "nat"})
        );
    }

    #[test]
    fn list_chunked_with_query() {
        let (client, handle, path) = serve(vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[{\"Na\r\nB\r\nme\":\"nat\"}]\r\n0\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]".into(),
        ]);
        let found = client.find_by_name(Kind::Networks, "nat").unwrap();
        assert_eq!(found, Some(json!({"Name": "nat"})));
        assert!(client.list(Kind::Endpoints, None).unwrap().is_empty());
        let seen = finish(handle, path);
        let request_line = seen[0].head.lines().next().unwrap();
        let target = request_line.split(' ').nth(1).unwrap();
        let (path_part, query) = target.split_once("?query=").unwrap();
        assert_eq!(path_part, "/v2/networks");
        assert_eq!(
            query,
            crate::percent_encode(
                r#"{"SchemaVersion":{"Major":2,"Minor":0},"Filter":"{\"Name\":\"nat\"}"}"#
            )
        );
        assert!(seen[1].head.starts_with("GET /v2/endpoints HTTP/1.1\r\n"));
    }

    #[test]
    fn hcn_errors() {
        let (client, handle, path) = serve(vec![
            json(
                "409 Conflict",
                r#"{"Success":false,"Error":"host port 8080/tcp is already mapped ","ErrorCode":2151350291}"#,
            ),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".into(),
            "HTTP/1.1 204 No Content\r\n\r\n".into(),
        ]);
        let err = client
            .create(Kind::Endpoints, &json!({"Name": "e"}))
            .unwrap_err();
        assert!(matches!(err, ApiError::Hcn { status: 409, .. }));
        assert_eq!(
            err.to_string(),
            "host port 8080/tcp is already mapped (HCN 0x803B0013 HCN_E_PORT_ALREADY_EXISTS)"
        );
        let err = client.get(Kind::Routes, "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected answer from hostnetd: HTTP 404: not found"
        );
        client
            .delete(Kind::Namespaces, "A1B2C3D4-0000-4000-8000-000000000001")
            .unwrap();
        let seen = finish(handle, path);
        assert!(seen[2].head.starts_with(
            "DELETE /v2/namespaces/A1B2C3D4-0000-4000-8000-000000000001 HTTP/1.1\r\n"
        ));
    }

    #[test]
    fn lookup_guid_falls_back_to_name() {
        let (client, handle, path) = serve(vec![
            json(
                "404 Not Found",
                r#"{"Success":false,"Error":"Element not found.","ErrorCode":2147943568}"#,
            ),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]".into(),
        ]);
        let id = "A1B2C3D4-0000-4000-8000-000000000001";
        assert_eq!(client.lookup(Kind::Networks, id).unwrap(), None);
        let seen = finish(handle, path);
        assert!(seen[0].head.starts_with(&format!("GET /v2/networks/{id} ")));
        assert!(seen[1].head.starts_with("GET /v2/networks?query="));
    }

    #[test]
    fn attach_and_version() {
        let (client, handle, path) = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\n\r\n{\"Major\":15,\"Minor\":5,\"Version\":\"0.1.0\",\"Features\":{\"DSR\":true}}".into(),
        ]);
        client.attach_endpoint("NS", "EP").unwrap();
        let version = client.version().unwrap();
        assert_eq!((version.major, version.minor), (15, 5));
        let seen = finish(handle, path);
        assert!(seen[0]
            .head
            .starts_with("PATCH /v2/namespaces/NS HTTP/1.1\r\n"));
        assert_eq!(
            serde_json::from_slice::<Value>(&seen[0].body).unwrap(),
            json!({"ResourceType":"Endpoint","RequestType":"Add","Settings":{"EndpointId":"EP"}})
        );
        assert!(seen[1].head.starts_with("GET /v2/version HTTP/1.1\r\n"));
    }

    #[test]
    fn connect_error_names_the_socket() {
        let path = socket_path();
        let err = Client::new(&path).version().unwrap_err();
        assert!(matches!(err, ApiError::Connect { .. }));
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("is the daemon running?"));
    }

    #[test]
    fn non_array_list_is_bad_response() {
        let (client, handle, path) =
            serve(vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".into()]);
        let err = client.list(Kind::Networks, None).unwrap_err();
        assert!(matches!(err, ApiError::BadResponse(_)), "{err}");
        finish(handle, path);
    }
}
