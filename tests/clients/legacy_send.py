#!/usr/bin/env python3
"""Sends the same spans twice with the real OpenTelemetry Python SDK: once with a legacy
exporter (Zipkin JSON, Zipkin protobuf, Jaeger thrift over HTTP, Jaeger thrift compact or
thrift binary over UDP) and once over OTLP/HTTP to a second vivace, so the test can compare what each protocol
carried. Prints the trace IDs (32 hex digits), one per line.

Usage: legacy_send.py --protocol zipkin-json|zipkin-proto|jaeger-http|jaeger-udp|jaeger-udp-binary
                      --endpoint URL|HOST:PORT --otlp-endpoint URL --traces N --service NAME
"""
import argparse
import os

# The Zipkin protobuf exporter ships protoc-3 generated code; with protobuf >= 4 it only loads
# with the pure-Python backend (the OTLP exporter works with either).
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def jaeger_exporter(**kwargs):
    # opentelemetry-exporter-jaeger-thrift 1.21 (the last release) imports environment-variable
    # names the SDK has since removed; give them back so the real exporter loads unchanged.
    import opentelemetry.sdk.environment_variables as names

    for name in ["AGENT_HOST", "AGENT_PORT", "AGENT_SPLIT_OVERSIZED_BATCHES", "ENDPOINT",
                 "PASSWORD", "TIMEOUT", "USER"]:
        full = "OTEL_EXPORTER_JAEGER_" + name
        if not hasattr(names, full):
            setattr(names, full, full)
    from opentelemetry.exporter.jaeger.thrift import JaegerExporter

    return JaegerExporter(**kwargs)


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, wire_type, payload):
    key = _varint(number << 3 | wire_type)
    if wire_type == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


class ZipkinProtoExporter:
    """opentelemetry-exporter-zipkin-proto-http 1.45 fails with protobuf >= 4 (its generated
    zipkin_pb2 map field has no .update there), and protobuf 3 breaks the OTLP exporter. So the
    spans the real Zipkin JSON encoder produces are written as zipkin.proto ListOfSpans here,
    field by field from zipkin-api's zipkin.proto, and posted as application/x-protobuf."""

    def __init__(self, endpoint):
        from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
        from opentelemetry.exporter.zipkin.node_endpoint import NodeEndpoint

        self.endpoint = endpoint
        self.encoder = JsonV2Encoder()
        self.node = NodeEndpoint()

    def export(self, spans):
        import json
        import requests
        from opentelemetry.sdk.trace.export import SpanExportResult

        kinds = {"CLIENT": 1, "SERVER": 2, "PRODUCER": 3, "CONSUMER": 4}
        body = b""
        for span in json.loads(self.encoder.serialize(spans, self.node)):
            encoded = _field(1, 2, bytes.fromhex(span["traceId"]))
            if span.get("parentId"):
                encoded += _field(2, 2, bytes.fromhex(span["parentId"]))
            encoded += _field(3, 2, bytes.fromhex(span["id"]))
            if span.get("kind") in kinds:
                encoded += _field(4, 0, _varint(kinds[span["kind"]]))
            encoded += _field(5, 2, span["name"].encode())
            encoded += _field(6, 1, span["timestamp"].to_bytes(8, "little"))
            encoded += _field(7, 0, _varint(span["duration"]))
            encoded += _field(8, 2, _field(1, 2, span["localEndpoint"]["serviceName"].encode()))
            for annotation in span.get("annotations") or []:
                encoded += _field(10, 2, _field(1, 1, annotation["timestamp"].to_bytes(8, "little"))
                                  + _field(2, 2, annotation["value"].encode()))
            for key, value in (span.get("tags") or {}).items():
                encoded += _field(11, 2, _field(1, 2, key.encode()) + _field(2, 2, value.encode()))
            body += _field(1, 2, encoded)
        response = requests.post(self.endpoint, data=body,
                                 headers={"Content-Type": "application/x-protobuf"})
        return SpanExportResult.SUCCESS if response.ok else SpanExportResult.FAILURE

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", required=True,
                        choices=["zipkin-json", "zipkin-proto", "jaeger-http", "jaeger-udp",
                                 "jaeger-udp-binary"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--otlp-endpoint", required=True)
    parser.add_argument("--traces", type=int, default=3)
    parser.add_argument("--service", default="legacy-test")
    args = parser.parse_args()

    if args.protocol == "zipkin-json":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter
        exporter = ZipkinExporter(endpoint=args.endpoint)
    elif args.protocol == "zipkin-proto":
        exporter = ZipkinProtoExporter(args.endpoint)
    elif args.protocol == "jaeger-http":
        exporter = jaeger_exporter(collector_endpoint=args.endpoint)
    else:
        host, port = args.endpoint.rsplit(":", 1)
        exporter = jaeger_exporter(agent_host_name=host, agent_port=int(port))
        if args.protocol == "jaeger-udp-binary":
            # The agent's :6832 takes the same emitBatch in Thrift's binary protocol, which is
            # what jaeger-client-node and other agent reporters send; the exporter's own UDP
            # client, with the generated Agent client writing binary instead of compact.
            from opentelemetry.exporter.jaeger.thrift.gen.agent import Agent
            from thrift.protocol import TBinaryProtocol

            udp = exporter._agent_client
            udp.client = Agent.Client(iprot=TBinaryProtocol.TBinaryProtocol(trans=udp.buffer))

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    otlp = OTLPSpanExporter(endpoint=args.otlp_endpoint + "/v1/traces")

    resource = Resource.create({"service.name": args.service, "service.version": "1.2.3",
                                "deployment.environment": "test", "host.cpu.count": 8})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(otlp))
    tracer = provider.get_tracer("vivace.legacy.test", "0.1.0")

    trace_ids = []
    previous = None
    for index in range(args.traces):
        links = [Link(previous, {"link.reason": "previous"})] if previous else []
        with tracer.start_as_current_span(
            f"GET /items/{index}", kind=SpanKind.SERVER,
            attributes={"http.method": "GET", "http.status_code": 200, "item.index": index,
                        "item.price": 12.5, "item.in_stock": True, "item.tags": ["a", "b"]},
        ) as root:
            previous = root.get_span_context()
            trace_ids.append(format(previous.trace_id, "032x"))
            with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT, links=links,
                                              attributes={"db.system": "postgresql"}) as client:
                with tracer.start_as_current_span("decode row", kind=SpanKind.INTERNAL) as inner:
                    inner.add_event("row.decoded", {"row.bytes": 1024, "row.codec": "pg"})
                if index % 2 == 1:
                    client.set_status(Status(StatusCode.ERROR, "connection reset"))
                else:
                    client.set_status(Status(StatusCode.OK))
            with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER):
                pass
    provider.force_flush()
    provider.shutdown()
    print("\n".join(trace_ids))


if __name__ == "__main__":
    main()
