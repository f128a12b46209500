//! The Zipkin v1 route, `POST /api/v1/spans`, which joins Zipkin v2's on the Zipkin port.

use std::sync::Arc;

use axum::Router;

use super::decode::decode_body;
use crate::distributor::Distributor;
use crate::receiver::ingest::{spans_router, SpanPaths};
use crate::receiver::listener::Startup;
use crate::receiver::zipkin::ZipkinConfig;

/// Where v1 tracers post their spans.
pub const PATH: &str = "/api/v1/spans";

/// The Zipkin v1 router: `POST /api/v1/spans`.
pub fn router(distributor: Arc<Distributor>) -> Router {
    spans_router(
        SpanPaths::Exactly(PATH),
        "zipkin v1",
        distributor,
        decode_body,
    )
}

/// Adds Zipkin v1 to the Zipkin port whenever Zipkin listens.
pub async fn start(config: &ZipkinConfig, startup: &mut Startup<'_>) -> anyhow::Result<()> {
    startup.share_when(config.enabled, "Zipkin", &config.endpoint, router);
    Ok(())
}
