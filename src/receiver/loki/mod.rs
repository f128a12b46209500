//! Loki push receiver: `POST /loki/api/v1/push`, JSON (optionally gzip) or snappy-compressed
//! protobuf `logproto.PushRequest`, answered with 204 and Loki's plain-text errors. Served with
//! the Loki read API (`logs::api`) on the API port and on `logs.loki_listen_port`, so its
//! settings are the `logs` section's. Rows go through [`crate::distributor::Distributor::push_logs`]
//! with the tenant rules, request limits and status codes of traces.

pub mod decode;
pub mod server;
