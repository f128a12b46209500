//! The Zipkin server: `POST` on any path, answered with 202 Accepted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::decode::{decode_json_v2, decode_proto, to_resource_spans};
use crate::distributor::{Distributor, DistributorError};
use crate::receiver::ingest::{self, decompress_request, ingest_spans, Encodings};
use crate::receiver::listener::Startup;

/// The Zipkin router: `POST` on any path.
pub fn router(distributor: Arc<Distributor>) -> Router {
    let limit = distributor.max_request_bytes();
    Router::new()
        .fallback(post_spans)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(distributor)
}

async fn post_spans(
    State(distributor): State<Arc<Distributor>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = ingest::post_only(&method) {
        return refused;
    }
    let limit = distributor.max_request_bytes();
    let v1 = uri.path().contains("api/v1/spans");
    let pushed = ingest_spans(
        &distributor,
        crate::tenant::org_id(&headers),
        body,
        |body| {
            if v1 {
                return Err(DistributorError::BadRequest(
                    "zipkin v1 is not supported: send zipkin v2 (JSON or protobuf) to /api/v2/spans"
                        .into(),
                ));
            }
            let body = decompress_request(&headers, Encodings::GzipOrDeflate, body, limit)?;
            let bad = |error: String| DistributorError::BadRequest(error);
            let spans = match ingest::media_type(&headers).as_str() {
                "application/x-protobuf" | "application/protobuf" => {
                    decode_proto(&body).map_err(|error| bad(error.to_string()))?
                }
                _ => decode_json_v2(&body).map_err(|error| bad(error.to_string()))?,
            };
            to_resource_spans(spans).map_err(|error| bad(format!("invalid zipkin span: {error}")))
        },
    )
    .await;
    match pushed {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => ingest::text_error(&error, "zipkin"),
    }
}

/// Starts Zipkin when enabled.
pub async fn start(config: &super::ZipkinConfig, startup: &mut Startup<'_>) -> anyhow::Result<()> {
    if config.enabled {
        let listener = startup.bind("Zipkin", &config.endpoint).await?;
        startup.serve(listener, router(Arc::clone(startup.distributor)));
    }
    Ok(())
}
