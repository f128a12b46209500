//! Zipkin v1 receiver: `POST /api/v1/spans` on the Zipkin port, beside Zipkin v2, listening
//! whenever Zipkin does (`distributor.receivers.zipkin`, as in Tempo, where a `zipkin:` section
//! takes both versions). The body is a JSON array of v1 spans (`application/json`, the default)
//! or a Thrift-binary `list<Span>` of zipkincore structs (`application/x-thrift`), gzip or
//! deflate allowed; answered with 202 Accepted, a bad body with 400 naming what was wrong.
//!
//! Each v1 span becomes one Zipkin v2 span, then OTLP by the Zipkin v2 rules
//! ([`crate::receiver::zipkin`]):
//! - kind from the core annotations: `cs`/`cr` client, `sr`/`ss` server, `ms` producer, `mr`
//!   consumer (a span holding both client and server annotations is the client's, from `cs` to
//!   `cr`; its `sr`/`ss` stay events);
//! - start and duration from `timestamp`/`duration`, else from that side's annotations (start
//!   to end), else from the earliest annotation;
//! - the local endpoint (service name) from that side's annotations' host, else any
//!   annotation's, else any binary annotation's;
//! - the boolean address annotation of the other side (`sa` on a client, `ca` on a server,
//!   `ma` on a producer or consumer; the first of them when the kind is unknown) is the remote
//!   endpoint, so `peer.service`, `net.peer.ip`, `net.peer.port`; other address annotations
//!   are dropped;
//! - other binary annotations are string tags (numbers in decimal, bytes in base64, booleans
//!   `true`/`false`; a Thrift one without a type is a string); other annotations are events;
//! - 64- or 128-bit trace IDs (`traceIdHigh` in Thrift, 32 hex digits in JSON), the parent ID,
//!   and `debug` as the sampled flag.

pub mod decode;
pub mod server;
