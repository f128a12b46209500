//! Wiring: which roles run, how they are connected, and graceful shutdown. Nothing else.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, MetricsSource};
use crate::config::Config;
use crate::distributor::Distributor;
use crate::generator::otlp_metrics::OtlpMetrics;
use crate::ingester::{BlockSink, Ingester};
use crate::model::{Trace, TraceId};
use crate::querier::Querier;
use crate::receiver::otlp_metrics::MetricsReceiver;
use crate::receiver::{ReceiverStats, Startup};
use crate::server::Listener;
use crate::telemetry::{self, Telemetry};
use crate::tempodb::meta::BlockMeta;
use crate::tempodb::Store;

/// Sets up `tracing` output; `RUST_LOG` overrides the configured level.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The ingester flushes cut blocks into the store.
struct StoreSink(Arc<Store>);

#[async_trait]
impl BlockSink for StoreSink {
    async fn write_block(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
    ) -> anyhow::Result<BlockMeta> {
        Ok(self.0.write_block(tenant, traces).await?)
    }
}

/// Runs every role until SIGINT or SIGTERM, then shuts down in order: stop accepting, flush the
/// ingester, stop the API.
pub async fn run(config: Config, demo: bool) -> anyhow::Result<()> {
    // Before anything is opened: a bad certificate or credential file stops startup at once.
    let security = crate::server::Security::load(&config.server.auth, &config.server.tls)
        .context("loading server.auth and server.tls")?;
    log_security(&config, &security);
    let telemetry = Arc::new(Telemetry::default());
    if let Err(error) = telemetry::stage::start_rss_sampler() {
        tracing::warn!(%error, "cannot start the rss sampler; vivace_stage_peak_rss_bytes stays 0");
    }
    let store = Arc::new(
        Store::open(config.storage.trace.clone())
            .await
            .context("opening the block store")?,
    );
    // A corrupt block (torn copy, bit rot, full disk of another writer) is moved aside before
    // any query can trip over it.
    store.verify_blocks().await;
    let (poller_stop, poller_stopped) = tokio::sync::watch::channel(false);
    let poller = Arc::clone(&store).spawn_poller(poller_stopped.clone());
    let compactor = config
        .compactor
        .enabled
        .then(|| Arc::clone(&store).spawn_compactor(config.compactor.clone(), poller_stopped));

    let sink: Arc<dyn BlockSink> = Arc::new(StoreSink(Arc::clone(&store)));
    let ingester = Ingester::open(config.ingester.clone(), sink)
        .await
        .context("opening the ingester and replaying its WAL")?;
    let ingester_loop = ingester.spawn_background();
    let log_store = match config.logs.enabled {
        true => Some(
            crate::logs::store::LogStore::open(
                config.logs.clone(),
                &config.ingester,
                &config.storage.trace,
            )
            .await
            .context("opening the log store and replaying its WAL")?,
        ),
        false => None,
    };
    let logs_loop = log_store.as_ref().map(|store| store.spawn_background());

    let overrides = Arc::new(config.overrides.clone());
    let generator = crate::generator::Generator::start(
        config.metrics_generator.clone(),
        Arc::clone(&overrides),
    )
    .map_err(|error| anyhow::anyhow!("starting the metrics-generator: {error}"))?;
    let mut distributor = Distributor::new(
        config.distributor.limits(),
        config.multitenancy_enabled,
        Arc::clone(&ingester),
        Arc::clone(&telemetry),
    )
    .with_generator(Arc::clone(&generator))
    .with_overrides(Arc::clone(&overrides));
    if let Some(store) = &log_store {
        distributor = distributor.with_logs(Arc::clone(store));
    }
    let distributor = Arc::new(distributor);
    let remote_writer = crate::generator::remote_write::RemoteWriter::start(
        &config.metrics_generator,
        Arc::clone(&generator),
        config.multitenancy_enabled,
    )
    .context("starting the generator's remote write")?;
    let otlp_metrics_config = &config.metrics_generator.otlp_metrics;
    let otlp_metrics = otlp_metrics_config.enabled.then(|| {
        Arc::new(OtlpMetrics::new(
            otlp_metrics_config.clone(),
            remote_writer.clone(),
        ))
    });
    if otlp_metrics.is_some()
        && remote_writer.is_none()
        && otlp_metrics_config.scrape_path.is_empty()
    {
        tracing::info!("otlp metrics are accepted but go nowhere: set metrics_generator.remote_write or otlp_metrics.scrape_path");
    }
    let metrics_receiver = otlp_metrics
        .as_ref()
        .map(|metrics| MetricsReceiver::new(Arc::clone(&distributor), Arc::clone(metrics)));
    let otlp_metrics_stop = CancellationToken::new();
    let otlp_metrics_sweeper = otlp_metrics
        .as_ref()
        .map(|metrics| Arc::clone(metrics).spawn_sweeper(otlp_metrics_stop.clone()));
    let querier = Arc::new(Querier::new(Arc::clone(&ingester), Arc::clone(&store)));
    let alerts = Arc::new(
        crate::alerts::Alerts::start(&config.alerts, &config.prometheus.url, Arc::clone(&querier))
            .context("opening the alerts file")?,
    );

    let ingester_for_metrics = Arc::clone(&ingester);
    let store_for_metrics = Arc::clone(&store);
    let receiver_stats = ReceiverStats::default();
    let udp_stats_for_metrics = Arc::clone(&receiver_stats.jaeger_udp);
    let mut metrics_sources: Vec<MetricsSource> = vec![
        Arc::new(move |out: &mut String| udp_stats_for_metrics.render(out)),
        Arc::new(move |out: &mut String| {
            telemetry::render_ingester(&ingester_for_metrics.stats(), out)
        }),
        Arc::new(move |out: &mut String| {
            telemetry::render_store(&store_for_metrics.stats().snapshot(), out)
        }),
        {
            let generator = Arc::clone(&generator);
            Arc::new(move |out: &mut String| generator.render_own_metrics(out))
        },
        Arc::new(telemetry::stage::render),
    ];
    {
        let alerts = Arc::clone(&alerts);
        metrics_sources.push(Arc::new(move |out: &mut String| alerts.render_metrics(out)));
    }
    if let Some(authenticator) = &security.auth {
        let authenticator = Arc::clone(authenticator);
        metrics_sources.push(Arc::new(move |out: &mut String| {
            authenticator.render_metrics(out)
        }));
    }
    if let Some(store) = &log_store {
        let store = Arc::clone(store);
        metrics_sources.push(Arc::new(move |out: &mut String| store.render_metrics(out)));
    }
    if let Some(remote_writer) = &remote_writer {
        let remote_writer = Arc::clone(remote_writer);
        metrics_sources.push(Arc::new(move |out: &mut String| {
            remote_writer.render_metrics(out)
        }));
    }
    if let Some(metrics) = &otlp_metrics {
        let metrics = Arc::clone(metrics);
        // The converted series themselves are the scrape's tenant's: the handler adds them.
        metrics_sources.push(Arc::new(move |out: &mut String| {
            metrics.render_own_metrics(out)
        }));
    }
    let api_state = Arc::new(ApiState {
        querier,
        telemetry: Arc::clone(&telemetry),
        multitenancy_enabled: config.multitenancy_enabled,
        overrides,
        ready: Default::default(),
        metrics_sources,
        generator: Some(Arc::clone(&generator)),
        otlp_metrics: otlp_metrics.clone(),
        alerts,
    });

    let http_address = config
        .server
        .listen_socket_address(config.server.http_listen_port);
    let api_listener = Listener::bind("the API and UI", &http_address, &security).await?;
    let grpc_address = config
        .server
        .listen_socket_address(config.server.grpc_listen_port);
    let grpc_listener = Listener::bind("the gRPC streaming API", &grpc_address, &security).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let receivers_stop = CancellationToken::new();
    crate::receiver::start_all(
        &config.distributor.receivers,
        metrics_receiver.clone(),
        &receiver_stats,
        &mut Startup::new(&distributor, &security, &receivers_stop, &mut tasks),
    )
    .await?;
    let api_stop = CancellationToken::new();
    let logs_api = log_store.as_ref().map(|store| {
        Arc::new(crate::logs::api::LogsApiState {
            store: Arc::clone(store),
            distributor: Arc::clone(&distributor),
            multitenancy_enabled: config.multitenancy_enabled,
        })
    });
    if let (Some(logs_api), port) = (&logs_api, config.logs.loki_listen_port) {
        if port != 0 {
            let address = config.server.listen_socket_address(port);
            let listener = Listener::bind("the Loki API", &address, &security).await?;
            tracing::info!(endpoint = %address, "loki api listening");
            let stop = api_stop.clone();
            let router = crate::logs::api::loki_port_router(Arc::clone(logs_api));
            tasks.spawn(async move {
                listener
                    .serve(router, async move { stop.cancelled().await })
                    .await
            });
        }
    }
    {
        let stop = api_stop.clone();
        let ui_state = crate::ui::UiState::new(Some(Arc::clone(&generator)), &config);
        tasks.spawn(crate::ui::sample_service_graph(
            Arc::clone(&ui_state),
            stop.clone(),
        ));
        let mut router = api::router(Arc::clone(&api_state)).merge(crate::ui::router(ui_state));
        if let Some(logs_api) = &logs_api {
            router = router.merge(crate::logs::api::router(Arc::clone(logs_api)));
        }
        if let Some(metrics) = &otlp_metrics {
            if let Some(path) = metrics.config().separate_scrape_path() {
                router = router.merge(otlp_metrics_scrape_route(
                    path,
                    Arc::clone(metrics),
                    config.multitenancy_enabled,
                ));
            }
        }
        let router = api::streaming::with_grpc(router, Arc::clone(&api_state));
        tasks.spawn(async move {
            api_listener
                .serve(router, async move { stop.cancelled().await })
                .await
        });
    }
    {
        let stop = api_stop.clone();
        tracing::info!(address = %grpc_address, "grpc streaming api listening");
        tasks.spawn(api::streaming::serve_grpc(
            grpc_listener,
            Arc::clone(&api_state),
            async move { stop.cancelled().await },
        ));
    }
    let ui_base_url = browsable_base_url(
        security.scheme(),
        &config.server.http_listen_address,
        config.server.http_listen_port,
    );
    if demo {
        tasks.spawn(crate::demo::run(
            Arc::clone(&distributor),
            ui_base_url.clone(),
            receivers_stop.clone(),
        ));
    }
    api_state.ready.store(true, Ordering::Release);
    tracing::info!(address = %ui_base_url, "vivace is ready");

    tokio::select! {
        _ = wait_for_signal() => tracing::info!("shutting down"),
        Some(result) = tasks.join_next() => {
            let outcome = result.context("a server task panicked")?;
            outcome.context("a server stopped unexpectedly")?;
        }
    }
    api_state.ready.store(false, Ordering::Release);
    receivers_stop.cancel();
    ingester.shutdown().await;
    if let Some(store) = &log_store {
        store.shutdown().await;
    }
    if let Some(logs_loop) = logs_loop {
        logs_loop.abort();
    }
    generator.stop();
    otlp_metrics_stop.cancel();
    if let Some(sweeper) = otlp_metrics_sweeper {
        let _ = sweeper.await;
    }
    if let Some(remote_writer) = &remote_writer {
        remote_writer.stop().await;
    }
    ingester_loop.abort();
    let _ = poller_stop.send(true);
    api_stop.cancel();
    let _ = poller.await;
    if let Some(compactor) = compactor {
        let _ = compactor.await;
    }
    while let Some(result) = tasks.join_next().await {
        if let Ok(Err(error)) = result {
            tracing::warn!("{error:#}");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The URL a person on this machine opens the UI at: a listener on every interface (`0.0.0.0`,
/// `::`, as in the container image) is reached through `localhost`.
fn browsable_base_url(scheme: &str, listen_address: &str, port: u16) -> String {
    let host = match listen_address.parse::<std::net::IpAddr>() {
        Ok(address) if address.is_unspecified() => "localhost".to_string(),
        Ok(std::net::IpAddr::V6(address)) => format!("[{address}]"),
        _ => listen_address.to_string(),
    };
    format!("{scheme}://{host}:{port}")
}

/// Says at startup whether listeners are authenticated and encrypted.
fn log_security(config: &Config, security: &crate::server::Security) {
    match &security.auth {
        Some(authenticator) => {
            let (tokens, users) = authenticator.counts();
            tracing::info!(
                bearer_tokens = tokens,
                basic_users = users,
                exempt_paths = ?config.server.auth.exempt_paths,
                "authentication required on every listener"
            );
        }
        None => tracing::info!("authentication is off (server.auth has no credential)"),
    }
    if security.tls.is_some() {
        tracing::info!(cert_file = %config.server.tls.cert_file, "tls on every tcp listener");
    }
}

/// `GET <path>` on the API port: the converted OTLP metrics alone, for scraping; with
/// multi-tenancy those of the tenant `X-Scope-OrgID` names (401 without it).
fn otlp_metrics_scrape_route(
    path: &str,
    metrics: Arc<OtlpMetrics>,
    multitenancy_enabled: bool,
) -> axum::Router {
    use axum::response::IntoResponse;
    axum::Router::new().route(
        path,
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let metrics = Arc::clone(&metrics);
            async move {
                let tenant = match crate::api::scrape_tenant_of(multitenancy_enabled, &headers) {
                    Ok(Some(tenant)) => tenant,
                    Ok(None) => {
                        return crate::api::ApiError {
                            status: axum::http::StatusCode::UNAUTHORIZED,
                            message: "no org id".into(),
                        }
                        .into_response()
                    }
                    Err(error) => return error.into_response(),
                };
                let mut text = String::new();
                metrics.render(&tenant, &mut text);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        crate::generator::exposition::PROMETHEUS_CONTENT_TYPE,
                    )],
                    text,
                )
                    .into_response()
            }
        }),
    )
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
