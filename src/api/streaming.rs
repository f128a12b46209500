//! The streaming gRPC API, `tempopb.StreamingQuerier`, as Grafana's Tempo datasource calls it
//! (reference/tempo-api.md §3): served on the gRPC port and, over h2c, on the HTTP port
//! next to the JSON API (requests whose `content-type` is `application/grpc*`).
//!
//! `Search` streams while the scan runs: the first batch's matches at once, then at most one
//! message per [`DIFF_INTERVAL`] with the matches found since the last message (diffs, as
//! Tempo) and the cumulative `metrics`; then the whole result (split into messages under
//! [`MAX_MESSAGE_BYTES`]), every message with `metrics`, then status OK.
//!
//! `MetricsQueryRange` / `MetricsQueryInstant` run the same code as `/api/metrics/query_range`
//! and `/api/metrics/query` and send the complete answer (range: split by whole series under
//! [`MAX_MESSAGE_BYTES`]; instant: one message), which Grafana's merging reads unambiguously.
//! The tag RPCs (`SearchTags`, `SearchTagsV2`, `SearchTagValues`, `SearchTagValuesV2`), which
//! Grafana never calls but other Tempo clients do, run the code of the matching `/api/…tags`
//! endpoint and send the whole answer in one message.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{http, Body, BoxFuture, StdError};
use tonic::{Code, Status};

use super::search::{prepare, run_error};
use super::state::{read_tenants, ApiError, ApiState};
use super::tempopb::{
    query_instant_response, query_range_response, trace_search_metadata, MetadataMetrics,
    QueryInstantRequest, QueryInstantResponse, QueryRangeRequest, QueryRangeResponse,
    SearchMetrics, SearchRequest, SearchResponse, SearchTagValuesRequest, SearchTagValuesResponse,
    SearchTagValuesV2Response, SearchTagsRequest, SearchTagsResponse, SearchTagsV2Response,
    SearchTagsV2Scope, TagValue,
};
use super::{metrics, tags};
use crate::querier::SearchProgress;

/// The gRPC service name Grafana dials.
pub const SERVICE_NAME: &str = "tempopb.StreamingQuerier";
/// Least time between two partial messages of a search (Tempo's 500 ms).
pub const DIFF_INTERVAL: Duration = Duration::from_millis(500);
/// Largest result message: Tempo splits at `max_grpc_streaming_packet_size` (1 MiB), well
/// under Grafana's 4 MiB receive limit.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest request message an RPC decodes (tonic's default, made explicit): a request is a
/// query of at most `MAX_QUERY_BYTES` and a few numbers. Larger ones are refused with
/// `OutOfRange` before they are buffered whole.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// `tempopb.StreamingQuerier` over the querier, as a tower service tonic and axum can serve.
#[derive(Clone)]
pub struct StreamingQuerierServer {
    state: Arc<ApiState>,
}

impl StreamingQuerierServer {
    pub fn new(state: Arc<ApiState>) -> StreamingQuerierServer {
        StreamingQuerierServer { state }
    }
}

impl tonic::server::NamedService for StreamingQuerierServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for StreamingQuerierServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let state = Arc::clone(&self.state);
        match request.uri().path() {
            "/tempopb.StreamingQuerier/Search" => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<SearchResponse, SearchRequest>::default();
                let mut grpc =
                    tonic::server::Grpc::new(codec).max_decoding_message_size(MAX_REQUEST_BYTES);
                Ok(grpc.server_streaming(SearchMethod(state), request).await)
            }),
            "/tempopb.StreamingQuerier/MetricsQueryRange" => Box::pin(async move {
                let codec =
                    tonic_prost::ProstCodec::<QueryRangeResponse, QueryRangeRequest>::default();
                let mut grpc =
                    tonic::server::Grpc::new(codec).max_decoding_message_size(MAX_REQUEST_BYTES);
                Ok(grpc
                    .server_streaming(MetricsRangeMethod(state), request)
                    .await)
            }),
            "/tempopb.StreamingQuerier/MetricsQueryInstant" => Box::pin(async move {
                let codec =
                    tonic_prost::ProstCodec::<QueryInstantResponse, QueryInstantRequest>::default();
                let mut grpc =
                    tonic::server::Grpc::new(codec).max_decoding_message_size(MAX_REQUEST_BYTES);
                Ok(grpc
                    .server_streaming(MetricsInstantMethod(state), request)
                    .await)
            }),
            "/tempopb.StreamingQuerier/SearchTags" => {
                serve_tags::<SearchTagsRequest, SearchTagsResponse, B>(state, request)
            }
            "/tempopb.StreamingQuerier/SearchTagsV2" => {
                serve_tags::<SearchTagsRequest, SearchTagsV2Response, B>(state, request)
            }
            "/tempopb.StreamingQuerier/SearchTagValues" => {
                serve_tags::<SearchTagValuesRequest, SearchTagValuesResponse, B>(state, request)
            }
            "/tempopb.StreamingQuerier/SearchTagValuesV2" => {
                serve_tags::<SearchTagValuesRequest, SearchTagValuesV2Response, B>(state, request)
            }
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

struct SearchMethod(Arc<ApiState>);

impl tonic::server::ServerStreamingService<SearchRequest> for SearchMethod {
    type Response = SearchResponse;
    type ResponseStream = ReceiverStream<Result<SearchResponse, Status>>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<SearchRequest>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move { search(state, request) })
    }
}

/// A finished answer as a stream of messages.
type Messages<T> = tokio_stream::Iter<std::vec::IntoIter<Result<T, Status>>>;

struct MetricsRangeMethod(Arc<ApiState>);

impl tonic::server::ServerStreamingService<QueryRangeRequest> for MetricsRangeMethod {
    type Response = QueryRangeResponse;
    type ResponseStream = Messages<QueryRangeResponse>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<QueryRangeRequest>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move {
            let headers = request.metadata().clone().into_headers();
            let tenants = read_tenants(&state, &headers).map_err(status_of)?;
            let request = request.get_ref();
            let params = metrics_params(
                &request.query,
                request.start,
                request.end,
                request.step,
                request.exemplars,
            );
            let answer = metrics::run_range(&state, &tenants, &params)
                .await
                .map_err(status_of)?;
            let messages = segment_series(query_range_response(&answer));
            Ok(tonic::Response::new(tokio_stream::iter(
                messages.into_iter().map(Ok).collect::<Vec<_>>(),
            )))
        })
    }
}

struct MetricsInstantMethod(Arc<ApiState>);

impl tonic::server::ServerStreamingService<QueryInstantRequest> for MetricsInstantMethod {
    type Response = QueryInstantResponse;
    type ResponseStream = Messages<QueryInstantResponse>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<QueryInstantRequest>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move {
            let headers = request.metadata().clone().into_headers();
            let tenants = read_tenants(&state, &headers).map_err(status_of)?;
            let request = request.get_ref();
            let params = metrics_params(&request.query, request.start, request.end, 0, 0);
            let answer = metrics::run_instant(&state, &tenants, &params)
                .await
                .map_err(status_of)?;
            // Grafana keeps only the last instant message: the whole answer goes in one.
            Ok(tonic::Response::new(tokio_stream::iter(vec![Ok(
                query_instant_response(&answer),
            )])))
        })
    }
}

/// Serves one tag RPC: `Request` in, the one `Response` message out.
fn serve_tags<Request, Response, B>(
    state: Arc<ApiState>,
    request: http::Request<B>,
) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
where
    Request: prost::Message + Default + Send + 'static,
    Response: TagRpc<Request> + prost::Message,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    Box::pin(async move {
        let codec = tonic_prost::ProstCodec::<Response, Request>::default();
        let mut grpc = tonic::server::Grpc::new(codec).max_decoding_message_size(MAX_REQUEST_BYTES);
        Ok(grpc
            .server_streaming(TagsMethod::<Response>::new(state), request)
            .await)
    })
}

/// One of the four tag RPCs, picked by its response type (see [`TagRpc`]).
struct TagsMethod<Response>(Arc<ApiState>, std::marker::PhantomData<fn() -> Response>);

impl<Response> TagsMethod<Response> {
    fn new(state: Arc<ApiState>) -> TagsMethod<Response> {
        TagsMethod(state, std::marker::PhantomData)
    }
}

/// A tag RPC: its request as `/api/…` parameters, and the endpoint's answer as its message.
trait TagRpc<Request>: Sized + Send + 'static {
    fn answer(
        state: Arc<ApiState>,
        headers: axum::http::HeaderMap,
        request: Request,
    ) -> impl std::future::Future<Output = Result<Self, ApiError>> + Send;
}

impl<Request, Response> tonic::server::ServerStreamingService<Request> for TagsMethod<Response>
where
    Request: Send + 'static,
    Response: TagRpc<Request>,
{
    type Response = Response;
    type ResponseStream = Messages<Response>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<Request>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move {
            let headers = request.metadata().clone().into_headers();
            let answer = Response::answer(state, headers, request.into_inner())
                .await
                .map_err(status_of)?;
            Ok(tonic::Response::new(tokio_stream::iter(vec![Ok(answer)])))
        })
    }
}

/// Adds the numeric fields that are set: zero means absent in proto3.
fn insert_nonzero(params: &mut HashMap<String, String>, fields: &[(&str, u32)]) {
    for (name, value) in fields {
        if *value != 0 {
            params.insert(name.to_string(), value.to_string());
        }
    }
}

fn tags_params(request: &SearchTagsRequest) -> HashMap<String, String> {
    let mut params = HashMap::new();
    params.insert("scope".to_string(), request.scope.clone());
    insert_nonzero(
        &mut params,
        &[
            ("start", request.start),
            ("end", request.end),
            ("limit", request.max_tags_per_scope),
        ],
    );
    params
}

fn tag_values_params(request: &SearchTagValuesRequest) -> HashMap<String, String> {
    let mut params = HashMap::new();
    if !request.query.is_empty() {
        params.insert("q".to_string(), request.query.clone());
    }
    insert_nonzero(
        &mut params,
        &[
            ("start", request.start),
            ("end", request.end),
            ("limit", request.max_tag_values),
        ],
    );
    params
}

fn metadata_metrics(inspected_bytes: u64) -> Option<MetadataMetrics> {
    Some(MetadataMetrics {
        inspected_bytes,
        ..MetadataMetrics::default()
    })
}

fn tag_name(request: &SearchTagValuesRequest) -> Result<&str, ApiError> {
    match request.tag_name.as_str() {
        "" => Err(ApiError::bad_request("please provide a non-empty tagName")),
        tag => Ok(tag),
    }
}

impl TagRpc<SearchTagsRequest> for SearchTagsResponse {
    async fn answer(
        state: Arc<ApiState>,
        headers: axum::http::HeaderMap,
        request: SearchTagsRequest,
    ) -> Result<Self, ApiError> {
        let (tag_names, inspected_bytes) =
            tags::tags_v1_answer(&state, &headers, &tags_params(&request)).await?;
        Ok(SearchTagsResponse {
            tag_names,
            metrics: metadata_metrics(inspected_bytes),
        })
    }
}

impl TagRpc<SearchTagsRequest> for SearchTagsV2Response {
    async fn answer(
        state: Arc<ApiState>,
        headers: axum::http::HeaderMap,
        request: SearchTagsRequest,
    ) -> Result<Self, ApiError> {
        let (scopes, inspected_bytes) =
            tags::tags_v2_answer(&state, &headers, &tags_params(&request)).await?;
        Ok(SearchTagsV2Response {
            scopes: scopes
                .into_iter()
                .map(|(name, tags)| SearchTagsV2Scope { name, tags })
                .collect(),
            metrics: metadata_metrics(inspected_bytes),
        })
    }
}

impl TagRpc<SearchTagValuesRequest> for SearchTagValuesResponse {
    async fn answer(
        state: Arc<ApiState>,
        headers: axum::http::HeaderMap,
        request: SearchTagValuesRequest,
    ) -> Result<Self, ApiError> {
        let tag = tag_name(&request)?;
        let (tag_values, inspected_bytes) =
            tags::tag_values_v1_answer(&state, &headers, tag, &tag_values_params(&request)).await?;
        Ok(SearchTagValuesResponse {
            tag_values,
            metrics: metadata_metrics(inspected_bytes),
        })
    }
}

impl TagRpc<SearchTagValuesRequest> for SearchTagValuesV2Response {
    async fn answer(
        state: Arc<ApiState>,
        headers: axum::http::HeaderMap,
        request: SearchTagValuesRequest,
    ) -> Result<Self, ApiError> {
        let tag = tag_name(&request)?;
        let (values, inspected_bytes) =
            tags::tag_values_v2_answer(&state, &headers, tag, &tag_values_params(&request)).await?;
        Ok(SearchTagValuesV2Response {
            tag_values: values
                .into_iter()
                .map(|(r#type, value)| TagValue { r#type, value })
                .collect(),
            metrics: metadata_metrics(inspected_bytes),
        })
    }
}

/// The `/api/metrics/*` parameters a metrics RPC stands for: nanosecond `start`/`end`
/// (longer than 10 digits, so read as ns), `step` in seconds; zeros are absent (a zero step
/// picks Tempo's default, zero exemplars the default count).
fn metrics_params(
    query: &str,
    start: u64,
    end: u64,
    step: u64,
    exemplars: u32,
) -> HashMap<String, String> {
    let mut params = HashMap::new();
    params.insert("q".to_string(), query.to_string());
    if start != 0 {
        params.insert("start".to_string(), format!("{start:011}"));
    }
    if end != 0 {
        params.insert("end".to_string(), format!("{end:011}"));
    }
    if step != 0 {
        params.insert("step".to_string(), format!("{}ns", step));
    }
    if exemplars != 0 {
        params.insert("exemplars".to_string(), exemplars.to_string());
    }
    params
}

/// A range answer as messages of at most [`MAX_MESSAGE_BYTES`], whole series each (Grafana
/// merges the frames of every message), each with `metrics` and the status.
fn segment_series(answer: QueryRangeResponse) -> Vec<QueryRangeResponse> {
    let base = QueryRangeResponse {
        series: Vec::new(),
        ..answer.clone()
    };
    let mut messages = vec![base.clone()];
    let mut size = base.encoded_len();
    for series in answer.series {
        let added = series.encoded_len() + 8;
        if size + added > MAX_MESSAGE_BYTES && !messages.last().is_some_and(|m| m.series.is_empty())
        {
            messages.push(base.clone());
            size = base.encoded_len();
        }
        size += added;
        if let Some(last) = messages.last_mut() {
            last.series.push(series);
        }
    }
    messages
}

/// Maps an API error to the gRPC status Tempo answers with (§3.3). A missing tenant is
/// `InvalidArgument` `no org id`, as in Tempo's frontend.
pub fn status_of(error: ApiError) -> Status {
    let code = match error.status {
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => Code::InvalidArgument,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        status if status.as_u16() == 499 => Code::Cancelled,
        status if status.is_server_error() => Code::Internal,
        _ => Code::Unknown,
    };
    Status::new(code, error.message)
}

/// The `/api/search` parameters a `SearchRequest` stands for, so both run the same checks.
fn search_params(request: &SearchRequest) -> HashMap<String, String> {
    let mut params = HashMap::new();
    if !request.query.is_empty() {
        params.insert("q".to_string(), request.query.clone());
    }
    if !request.tags.is_empty() {
        let mut tags: Vec<_> = request.tags.iter().collect();
        tags.sort();
        let logfmt: Vec<String> = tags
            .into_iter()
            .map(|(key, value)| {
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                format!("{key}=\"{escaped}\"")
            })
            .collect();
        params.insert("tags".to_string(), logfmt.join(" "));
    }
    insert_nonzero(
        &mut params,
        &[
            ("limit", request.limit),
            ("spss", request.spans_per_span_set),
            ("start", request.start),
            ("end", request.end),
        ],
    );
    if request.min_duration_ms != 0 {
        params.insert(
            "minDuration".into(),
            format!("{}ms", request.min_duration_ms),
        );
    }
    if request.max_duration_ms != 0 {
        params.insert(
            "maxDuration".into(),
            format!("{}ms", request.max_duration_ms),
        );
    }
    params
}

fn search(
    state: Arc<ApiState>,
    request: tonic::Request<SearchRequest>,
) -> Result<tonic::Response<ReceiverStream<Result<SearchResponse, Status>>>, Status> {
    let headers = request.metadata().clone().into_headers();
    let tenants = read_tenants(&state, &headers).map_err(status_of)?;
    let prepared = prepare(
        &search_params(request.get_ref()),
        super::search::max_search_seconds(&state, &tenants),
    )
    .map_err(status_of)?;
    let (out, stream) = mpsc::channel(4);
    tokio::spawn(async move {
        let (progress_tx, mut progress) = mpsc::channel::<SearchProgress>(2);
        let run = state.querier.search_with_progress(
            &tenants,
            prepared.query,
            prepared.limit,
            prepared.options,
            Some(progress_tx),
        );
        tokio::pin!(run);
        let mut partials = Partials {
            out: out.clone(),
            pending: SearchResponse::default(),
            last_sent: None,
        };
        let outcome = loop {
            tokio::select! {
                biased;
                Some(report) = progress.recv() => {
                    if !partials.forward(report).await {
                        return; // The client left; dropping `run` stops the scan.
                    }
                }
                outcome = &mut run => break outcome,
                // The client left: dropping `run` stops the scan at its next await.
                () = out.closed() => return,
            }
        };
        // Reports queued while the last batch finished (the scan ends right after sending).
        while let Ok(report) = progress.try_recv() {
            if !partials.forward(report).await {
                return;
            }
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                let _ = out.send(Err(status_of(run_error(error)))).await;
                return;
            }
        };
        let jobs = outcome.total_blocks as u32 + 1;
        let metrics = SearchMetrics {
            inspected_traces: outcome.inspected_traces as u32,
            inspected_bytes: outcome.inspected_bytes,
            total_blocks: outcome.total_blocks as u32,
            completed_jobs: jobs,
            total_jobs: jobs,
            total_block_bytes: 0,
            inspected_spans: outcome.inspected_spans,
        };
        let traces = outcome.traces.iter().map(trace_search_metadata).collect();
        for message in segment(traces, metrics) {
            if out.send(Ok(message)).await.is_err() {
                return;
            }
        }
    });
    Ok(tonic::Response::new(ReceiverStream::new(stream)))
}

/// Turns progress reports into partial messages: the first at once, then at most one per
/// [`DIFF_INTERVAL`], each with the matches since the previous message (a diff).
struct Partials {
    out: mpsc::Sender<Result<SearchResponse, Status>>,
    /// Matches not sent yet, and the latest metrics.
    pending: SearchResponse,
    last_sent: Option<Instant>,
}

impl Partials {
    /// `false` when the client has gone.
    async fn forward(&mut self, report: SearchProgress) -> bool {
        self.pending
            .traces
            .extend(report.traces.iter().map(trace_search_metadata));
        self.pending.metrics = Some(progress_metrics(&report));
        if self
            .last_sent
            .is_none_or(|sent| sent.elapsed() >= DIFF_INTERVAL)
        {
            let message = std::mem::take(&mut self.pending);
            if self.out.send(Ok(message)).await.is_err() {
                return false;
            }
            self.last_sent = Some(Instant::now());
        }
        true
    }
}

fn progress_metrics(report: &SearchProgress) -> SearchMetrics {
    SearchMetrics {
        inspected_traces: report.inspected_traces as u32,
        inspected_bytes: report.inspected_bytes,
        total_blocks: report.total_blocks as u32,
        completed_jobs: report.completed_jobs as u32,
        total_jobs: report.total_jobs as u32,
        total_block_bytes: 0,
        inspected_spans: report.inspected_spans,
    }
}

/// The final result as messages of at most [`MAX_MESSAGE_BYTES`] (a single larger trace
/// goes alone), each carrying `metrics`; at least one message, even without traces.
fn segment(
    traces: Vec<super::tempopb::TraceSearchMetadata>,
    metrics: SearchMetrics,
) -> Vec<SearchResponse> {
    let base = SearchResponse {
        traces: Vec::new(),
        metrics: Some(metrics),
    };
    let mut messages = vec![base.clone()];
    let mut size = base.encoded_len();
    for trace in traces {
        let added = trace.encoded_len() + 8;
        if size + added > MAX_MESSAGE_BYTES && !messages.last().is_some_and(|m| m.traces.is_empty())
        {
            messages.push(base.clone());
            size = base.encoded_len();
        }
        size += added;
        if let Some(last) = messages.last_mut() {
            last.traces.push(trace);
        }
    }
    messages
}

/// Whether an HTTP request is gRPC (Tempo: HTTP/2 and a `content-type` containing
/// `application/grpc`).
fn is_grpc(request: &Request) -> bool {
    request.version() == http::Version::HTTP_2
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("application/grpc"))
}

/// Middleware of the HTTP port: gRPC requests go to the streaming querier, the rest on.
pub async fn dispatch(
    State(server): State<StreamingQuerierServer>,
    request: Request,
    next: Next,
) -> Response {
    if !is_grpc(&request) {
        return next.run(request).await;
    }
    let mut server = server;
    match tower::Service::call(&mut server, request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// The HTTP port's router with gRPC dispatch in front (`stream_over_http_enabled`).
pub fn with_grpc(router: axum::Router, state: Arc<ApiState>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        StreamingQuerierServer::new(state),
        dispatch,
    ))
}

/// Serves the streaming querier on the gRPC port until `shutdown`.
pub async fn serve_grpc(
    listener: crate::server::Listener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let routes = tonic::service::Routes::new(StreamingQuerierServer::new(state));
    listener.serve(routes.into_axum_router(), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tempopb::TraceSearchMetadata;

    #[test]
    fn request_fields_become_search_parameters() {
        let request = SearchRequest {
            query: "{ status = error }".into(),
            limit: 5,
            start: 10,
            end: 20,
            min_duration_ms: 100,
            tags: [("service.name".to_string(), "a \"b\"".to_string())].into(),
            ..Default::default()
        };
        let params = search_params(&request);
        assert_eq!(params["q"], "{ status = error }");
        assert_eq!(params["limit"], "5");
        assert_eq!(params["start"], "10");
        assert_eq!(params["minDuration"], "100ms");
        assert_eq!(params["tags"], r#"service.name="a \"b\"""#);
        assert!(!params.contains_key("spss"));
    }

    #[test]
    fn large_results_are_split_and_every_part_has_metrics() {
        let trace = TraceSearchMetadata {
            trace_id: "ab".into(),
            root_service_name: "x".repeat(300_000),
            ..Default::default()
        };
        let messages = segment(vec![trace; 7], SearchMetrics::default());
        assert!(messages.len() >= 3, "{}", messages.len());
        assert_eq!(messages.iter().map(|m| m.traces.len()).sum::<usize>(), 7);
        for message in &messages {
            assert!(message.metrics.is_some());
            assert!(message.encoded_len() <= MAX_MESSAGE_BYTES);
        }
        let empty = segment(Vec::new(), SearchMetrics::default());
        assert_eq!(empty.len(), 1);
        assert!(empty[0].metrics.is_some());
    }
}
