//! Wiring: which roles run, how they are connected, and graceful shutdown. Nothing else.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, MetricsSource};
use crate::config::Config;
use crate::distributor::Distributor;
use crate::ingester::{BlockSink, Ingester};
use crate::model::{Trace, TraceId};
use crate::querier::Querier;
use crate::receiver::{jaeger, otlp, zipkin};
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

async fn bind(what: &str, address: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for {what} on {address}"))
}

/// Runs every role until SIGINT or SIGTERM, then shuts down in order: stop accepting, flush the
/// ingester, stop the API.
pub async fn run(config: Config, demo: bool) -> anyhow::Result<()> {
    let telemetry = Arc::new(Telemetry::default());
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

    let generator = crate::generator::Generator::start(config.metrics_generator.clone())
        .map_err(|error| anyhow::anyhow!("starting the metrics-generator: {error}"))?;
    let overrides = Arc::new(config.overrides.clone());
    let distributor = Arc::new(
        Distributor::new(
            config.distributor.clone(),
            config.multitenancy_enabled,
            Arc::clone(&ingester),
            Arc::clone(&telemetry),
        )
        .with_generator(Arc::clone(&generator))
        .with_overrides(Arc::clone(&overrides)),
    );
    let remote_writer = crate::generator::remote_write::RemoteWriter::start(
        &config.metrics_generator,
        Arc::clone(&generator),
    )
    .context("starting the generator's remote write")?;
    let querier = Arc::new(Querier::new(Arc::clone(&ingester), Arc::clone(&store)));
    let alerts = Arc::new(
        crate::alerts::Alerts::start(&config.alerts, &config.prometheus.url, Arc::clone(&querier))
            .context("opening the alerts file")?,
    );

    let ingester_for_metrics = Arc::clone(&ingester);
    let store_for_metrics = Arc::clone(&store);
    let jaeger_udp_stats = Arc::new(jaeger::UdpStats::default());
    let udp_stats_for_metrics = Arc::clone(&jaeger_udp_stats);
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
    ];
    {
        let alerts = Arc::clone(&alerts);
        metrics_sources.push(Arc::new(move |out: &mut String| alerts.render_metrics(out)));
    }
    if let Some(remote_writer) = &remote_writer {
        let remote_writer = Arc::clone(remote_writer);
        metrics_sources.push(Arc::new(move |out: &mut String| {
            remote_writer.render_metrics(out)
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
        alerts,
    });

    let http_address = format!(
        "{}:{}",
        config.server.http_listen_address, config.server.http_listen_port
    );
    let api_listener = bind("the API and UI", &http_address).await?;
    let receivers = &config.distributor.receivers.otlp.protocols;
    let mut tasks = tokio::task::JoinSet::new();
    let receivers_stop = CancellationToken::new();
    if receivers.grpc.enabled {
        let listener = bind("OTLP/gRPC", &receivers.grpc.endpoint).await?;
        tracing::info!(endpoint = %receivers.grpc.endpoint, "otlp grpc receiver listening");
        let stop = receivers_stop.clone();
        tasks.spawn(otlp::serve_grpc(
            listener,
            Arc::clone(&distributor),
            async move { stop.cancelled().await },
        ));
    }
    if receivers.http.enabled {
        let listener = bind("OTLP/HTTP", &receivers.http.endpoint).await?;
        tracing::info!(endpoint = %receivers.http.endpoint, "otlp http receiver listening");
        let stop = receivers_stop.clone();
        tasks.spawn(otlp::serve_http(
            listener,
            Arc::clone(&distributor),
            async move { stop.cancelled().await },
        ));
    }
    spawn_zipkin_and_jaeger(
        &config,
        &distributor,
        &jaeger_udp_stats,
        &receivers_stop,
        &mut tasks,
    )
    .await?;
    let api_stop = CancellationToken::new();
    {
        let stop = api_stop.clone();
        let router = api::router(Arc::clone(&api_state));
        tasks.spawn(async move {
            axum::serve(api_listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await?;
            Ok(())
        });
    }
    if demo {
        tasks.spawn(crate::demo::run(
            Arc::clone(&distributor),
            format!("http://{http_address}"),
            receivers_stop.clone(),
        ));
    }
    api_state.ready.store(true, Ordering::Release);
    tracing::info!(address = %format!("http://{http_address}"), "vivace is ready");

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
    generator.stop();
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

/// Binds and spawns the Zipkin and Jaeger receivers that are enabled.
async fn spawn_zipkin_and_jaeger(
    config: &Config,
    distributor: &Arc<Distributor>,
    udp_stats: &Arc<jaeger::UdpStats>,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let receivers = &config.distributor.receivers;
    if receivers.zipkin.enabled {
        let listener = bind("Zipkin", &receivers.zipkin.endpoint).await?;
        tracing::info!(endpoint = %receivers.zipkin.endpoint, "zipkin receiver listening");
        let stop = stop.clone();
        tasks.spawn(zipkin::serve(
            listener,
            Arc::clone(distributor),
            async move { stop.cancelled().await },
        ));
    }
    let jaeger = &receivers.jaeger.protocols;
    if jaeger.thrift_http.enabled {
        let listener = bind("Jaeger thrift_http", &jaeger.thrift_http.endpoint).await?;
        tracing::info!(endpoint = %jaeger.thrift_http.endpoint, "jaeger thrift_http receiver listening");
        let stop = stop.clone();
        tasks.spawn(jaeger::serve_thrift_http(
            listener,
            Arc::clone(distributor),
            async move { stop.cancelled().await },
        ));
    }
    if jaeger.grpc.enabled {
        let listener = bind("Jaeger gRPC", &jaeger.grpc.endpoint).await?;
        tracing::info!(endpoint = %jaeger.grpc.endpoint, "jaeger grpc receiver listening");
        let stop = stop.clone();
        tasks.spawn(jaeger::serve_grpc(
            listener,
            Arc::clone(distributor),
            async move { stop.cancelled().await },
        ));
    }
    if jaeger.thrift_compact.enabled {
        let address = &jaeger.thrift_compact.endpoint;
        let socket = tokio::net::UdpSocket::bind(address)
            .await
            .with_context(|| format!("cannot listen for Jaeger thrift_compact on udp {address}"))?;
        tracing::info!(endpoint = %address, "jaeger thrift_compact receiver listening");
        let stop = stop.clone();
        tasks.spawn(jaeger::serve_udp(
            socket,
            Arc::clone(distributor),
            Arc::clone(udp_stats),
            async move { stop.cancelled().await },
        ));
    }
    Ok(())
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
