//! The Zipkin v2 server: `POST` on any path of the Zipkin port that no other receiver's route
//! takes (Zipkin v1 takes `/api/v1/spans`), answered with 202 Accepted.

use std::sync::Arc;

use axum::Router;

use super::decode::decode_body;
use crate::distributor::Distributor;
use crate::receiver::ingest::{spans_router, SpanPaths};
use crate::receiver::listener::Startup;

/// The Zipkin router: `POST` on any path.
pub fn router(distributor: Arc<Distributor>) -> Router {
    spans_router(SpanPaths::AnyOther, "zipkin", distributor, decode_body)
}

/// Adds Zipkin to the Zipkin port when enabled.
pub async fn start(config: &super::ZipkinConfig, startup: &mut Startup<'_>) -> anyhow::Result<()> {
    startup.share_when(config.enabled, "Zipkin", &config.endpoint, router);
    Ok(())
}
