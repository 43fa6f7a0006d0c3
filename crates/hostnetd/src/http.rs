//! REST routes over the service. Handlers only translate: the body goes to
//! the core as bytes (so malformed JSON gets the HCN error, not axum's),
//! the core runs on the blocking pool, and errors become ErrorRecords.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hostnet_api::ErrorRecord;
use hostnet_core::{Kind, Service};

use crate::cluster::ClusterView;
use hostnet_model::{ErrorCode, HcnError};
use serde::Deserialize;
use serde_json::Value;

type Svc = Arc<Service>;

/// Largest request body: a policy-heavy endpoint (10,000 ACL rules are
/// about 2 MB of JSON) must fit; axum's default is 2 MiB.
const MAX_BODY: usize = 32 << 20;

pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    svc: Svc,
    cluster: Option<ClusterView>,
) -> Result<(), String> {
    let listener =
        tokio::net::UnixListener::from_std(listener).map_err(|e| format!("socket: {e}"))?;
    axum::serve(listener, router(svc, cluster))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| format!("serving: {e}"))
}

pub fn router(svc: Svc, cluster: Option<ClusterView>) -> Router {
    let cluster_routes = Router::new()
        .route("/v2/cluster/hosts", get(cluster_hosts))
        .with_state(cluster);
    Router::new()
        .route("/v2/version", get(version))
        .route("/openapi.json", get(openapi))
        .route("/v2/{kind}", get(list).post(create))
        .route("/v2/{kind}/{id}", get(one).delete(remove).patch(modify))
        .route("/v2/endpoints/{id}/trace", post(trace))
        .route("/v2/endpoints/{id}/stats", get(stats))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(svc)
        .merge(cluster_routes)
}

/// The hosts registered in the cluster (cluster mode; see docs/cluster.md).
async fn cluster_hosts(State(cluster): State<Option<ClusterView>>) -> Response {
    let Some(cluster) = cluster else {
        return error(HcnError::new(
            ErrorCode::RequestUnsupported,
            "this hostnetd keeps its state on this host (the embedded store): start it with --store etcd://HOST:PORT for cluster mode",
        ));
    };
    blocking(
        move || {
            cluster.hosts().map(Value::Array).map_err(|e| {
                HcnError::new(
                    ErrorCode::DegradedOperation,
                    format!(
                        "the cluster's host list is unavailable: {e}; retry once etcd is reachable"
                    ),
                )
            })
        },
        StatusCode::OK,
    )
    .await
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    log::info!("shutting down; the data plane keeps forwarding");
}

#[derive(Deserialize)]
struct ListParams {
    query: Option<String>,
}

async fn version(State(svc): State<Svc>) -> Response {
    json(StatusCode::OK, svc.version())
}

async fn openapi() -> Response {
    let spec: Value =
        serde_json::from_str(include_str!("../../../docs/openapi.json")).unwrap_or(Value::Null);
    json(StatusCode::OK, spec)
}

async fn list(
    State(svc): State<Svc>,
    Path(kind): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let kind = match parse_kind(&kind) {
        Ok(k) => k,
        Err(e) => return error(e),
    };
    let Ok(Query(p)) = params else {
        return error(HcnError::new(
            ErrorCode::InvalidJson,
            "the query string is not ?query=<URL-encoded HostComputeQuery JSON>",
        ));
    };
    blocking(
        move || svc.list(kind, p.query.as_deref()).map(Value::Array),
        StatusCode::OK,
    )
    .await
}

async fn create(State(svc): State<Svc>, Path(kind): Path<String>, body: Bytes) -> Response {
    let kind = match parse_kind(&kind) {
        Ok(k) => k,
        Err(e) => return error(e),
    };
    blocking(move || svc.create(kind, &body), StatusCode::CREATED).await
}

async fn one(State(svc): State<Svc>, Path((kind, id)): Path<(String, String)>) -> Response {
    let kind = match parse_kind(&kind) {
        Ok(k) => k,
        Err(e) => return error(e),
    };
    blocking(move || svc.get(kind, &id), StatusCode::OK).await
}

async fn modify(
    State(svc): State<Svc>,
    Path((kind, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let kind = match parse_kind(&kind) {
        Ok(k) => k,
        Err(e) => return error(e),
    };
    blocking(move || svc.modify(kind, &id, &body), StatusCode::OK).await
}

/// hostnet's packet trace of an endpoint (see docs/api.md).
async fn trace(State(svc): State<Svc>, Path(id): Path<String>, body: Bytes) -> Response {
    blocking(move || svc.trace_endpoint(&id, &body), StatusCode::OK).await
}

/// An endpoint's counters: HNS's endpoint statistics and per-rule counts
/// (see docs/api.md). Read from the kernel off the async runtime.
async fn stats(State(svc): State<Svc>, Path(id): Path<String>) -> Response {
    blocking(move || svc.endpoint_stats(&id), StatusCode::OK).await
}

async fn remove(State(svc): State<Svc>, Path((kind, id)): Path<(String, String)>) -> Response {
    let kind = match parse_kind(&kind) {
        Ok(k) => k,
        Err(e) => return error(e),
    };
    match tokio::task::spawn_blocking(move || svc.delete(kind, &id)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => error(e),
        Err(e) => error(HcnError::new(
            ErrorCode::Unexpected,
            format!("request failed: {e}"),
        )),
    }
}

async fn not_found() -> Response {
    error(HcnError::new(
        ErrorCode::NotFound,
        "Element not found. No such API path: use /v2/{networks,endpoints,namespaces,loadbalancers,routes}[/{id}] or /v2/version",
    ))
}

fn parse_kind(s: &str) -> Result<Kind, HcnError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "networks" => Kind::Network,
        "endpoints" => Kind::Endpoint,
        "namespaces" => Kind::Namespace,
        "loadbalancers" => Kind::LoadBalancer,
        "routes" => Kind::Route,
        _ => {
            return Err(HcnError::new(
                ErrorCode::NotFound,
                format!("Element not found. No object kind {s:?}: use networks, endpoints, namespaces, loadbalancers or routes"),
            ))
        }
    })
}

async fn blocking<F>(f: F, ok: StatusCode) -> Response
where
    F: FnOnce() -> Result<Value, HcnError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => json(ok, v),
        Ok(Err(e)) => error(e),
        Err(e) => error(HcnError::new(
            ErrorCode::Unexpected,
            format!("request failed: {e}"),
        )),
    }
}

fn json(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&v).expect("JSON values serialize"),
    )
        .into_response()
}

fn error(e: HcnError) -> Response {
    let code = e.code.code();
    let status = StatusCode::from_u16(hostnet_api::http_status(code))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let record = ErrorRecord {
        success: false,
        error: e.message,
        error_code: code,
    };
    json(
        status,
        serde_json::to_value(record).expect("record serializes"),
    )
}
