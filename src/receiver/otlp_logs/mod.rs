//! OTLP logs receiver: gRPC `opentelemetry.proto.collector.logs.v1.LogsService/Export` beside
//! the trace service on the OTLP gRPC port, and HTTP `POST /v1/logs` (protobuf or JSON, gzip)
//! beside `/v1/traces`. Records become [`crate::logs::LogRow`]s pushed through
//! [`crate::distributor::Distributor::push_logs`], with the tenant rules, request limits and
//! status codes of traces; malformed bodies are 400 / INVALID_ARGUMENT naming what was wrong.
//! It listens on the OTLP ports (`distributor.receivers.otlp`) when `logs.enabled`.

pub mod decode;
pub mod server;
