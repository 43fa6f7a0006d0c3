//! The plugin socket: Docker's plugin protocol is HTTP POST of JSON to
//! `/<Call>`, answered with JSON, errors as `{"Err":"…"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::driver::Driver;

/// Docker's media type for plugin answers.
const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";

pub fn router(driver: Arc<Driver>) -> Router {
    Router::new()
        .route("/{call}", post(call))
        .with_state(driver)
}

async fn call(
    State(driver): State<Arc<Driver>>,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let req: Value = match body.iter().all(u8::is_ascii_whitespace) {
        true => json!({}),
        false => match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    json!({ "Err": format!("{method}: the body is not JSON: {e}") }),
                )
            }
        },
    };
    let m = method.clone();
    let outcome = tokio::task::spawn_blocking(move || driver.call(&m, &req)).await;
    match outcome {
        Ok(Ok(v)) => answer(StatusCode::OK, v),
        Ok(Err(e)) => {
            log::warn!("{method}: {e}");
            answer(StatusCode::INTERNAL_SERVER_ERROR, json!({ "Err": e }))
        }
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "Err": format!("{method}: {e}") }),
        ),
    }
}

fn answer(status: StatusCode, v: Value) -> Response {
    (status, [(header::CONTENT_TYPE, MEDIA_TYPE)], v.to_string()).into_response()
}
