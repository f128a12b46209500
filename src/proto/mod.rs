//! Wire formats written by hand: the protobuf messages prost has no crate for (Jaeger, Zipkin,
//! Loki, `google.rpc.Status`), a Thrift reader, and OTLP's JSON mapping. Leaves of the module
//! graph: they know nothing of the receivers that use them.

pub mod jaeger;
pub mod loki;
pub mod otlp_json;
pub mod thrift;
pub mod zipkin;

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}
