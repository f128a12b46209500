//! The Loki push handler, mounted by the logs API's routers.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::decode::loki_rows;
use crate::distributor::Distributor;
use crate::receiver::ingest::ingest;

/// `POST /loki/api/v1/push`: 204 on success, plain-text errors as Loki writes them.
pub async fn push(distributor: &Distributor, headers: &HeaderMap, body: Bytes) -> Response {
    let limit = distributor.max_request_bytes();
    let pushed = ingest(
        distributor,
        crate::tenant::org_id(headers),
        body,
        |body| loki_rows(headers, body, limit),
        |tenant, rows| async move { distributor.push_logs(&tenant, rows).await },
    )
    .await;
    match pushed {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            let status = error.http_status();
            if status.is_server_error() {
                tracing::warn!(%error, "loki push failed");
            }
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{error}\n"),
            )
                .into_response()
        }
    }
}
