#!/usr/bin/env python3
"""Sends traces to vivace with the real OpenTelemetry Python SDK and records what was sent.

Usage: otel_send.py --protocol grpc|http --endpoint URL --traces N --out expected.json
       [--header key=value ...] [--ca-file cert.pem]   (auth headers; https with that root)

Each trace has a server root span, a client child with a link to the previous trace, an
internal grandchild with events, and every attribute type the SDK supports. The output file
lists every span as the SDK exported it, for the test to compare with vivace's answer.
"""
import argparse
import json
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


class Recorder(SpanExporter):
    """Keeps a copy of every exported span."""

    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def value_of(value):
    if isinstance(value, (tuple, list)):
        return [value_of(item) for item in value]
    return value


def attributes_of(attributes):
    return {key: value_of(value) for key, value in (attributes or {}).items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--traces", type=int, default=5)
    parser.add_argument("--out", required=True)
    parser.add_argument("--service", default="sdk-test")
    parser.add_argument("--header", action="append", default=[], help="key=value sent with every export")
    parser.add_argument("--ca-file", help="PEM root certificate of an https endpoint")
    args = parser.parse_args()
    headers = dict(header.split("=", 1) for header in args.header) or None
    if args.ca_file:
        # requests prefers REQUESTS_CA_BUNDLE from the environment over the exporter's own
        # certificate_file, so point it at the same root.
        os.environ["REQUESTS_CA_BUNDLE"] = args.ca_file

    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from grpc import Compression

        if args.ca_file:
            import grpc

            with open(args.ca_file, "rb") as ca:
                credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
            exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=False, credentials=credentials,
                                        headers=headers, compression=Compression.Gzip)
        else:
            exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=True, headers=headers,
                                        compression=Compression.Gzip)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression

        exporter = OTLPSpanExporter(endpoint=args.endpoint + "/v1/traces", compression=Compression.Gzip,
                                    headers=headers, certificate_file=args.ca_file)

    resource = Resource.create(
        {
            "service.name": args.service,
            "service.version": "1.2.3",
            "deployment.environment": "test",
            "host.cpu.count": 8,
            "k8s.namespace.name": "shop",
        }
    )
    provider = TracerProvider(resource=resource)
    recorder = Recorder()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    tracer = provider.get_tracer("vivace.sdk.test", "0.4.2")

    previous_context = None
    for index in range(args.traces):
        links = [Link(previous_context, {"link.reason": "previous"})] if previous_context else []
        with tracer.start_as_current_span(
            f"GET /items/{index}",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.method": "GET",
                "http.url": f"http://shop/items/{index}",
                "http.status_code": 200,
                "http.route": "/items/{id}",
                "url.path": f"/items/{index}",
                "item.index": index,
                "item.price": 12.5 + index,
                "item.in_stock": index % 2 == 0,
                "item.tags": ["a", "b", f"t{index}"],
                "item.sizes": [1, 2, 3],
                "item.weights": [0.5, 1.5],
                "item.flags": [True, False],
                "empty.text": "",
            },
        ) as root:
            previous_context = root.get_span_context()
            with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT, links=links,
                                              attributes={"db.system": "postgresql", "server.address": "db"}) as client:
                with tracer.start_as_current_span("decode row", kind=SpanKind.INTERNAL) as inner:
                    inner.add_event("row.decoded", {"row.bytes": 1024, "row.ok": True, "row.codec": "pg"})
                    inner.add_event("cache.miss")
                if index % 3 == 2:
                    client.set_status(Status(StatusCode.ERROR, "connection reset"))
                    client.record_exception(ValueError("boom"))
                else:
                    client.set_status(Status(StatusCode.OK))
            with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER,
                                              attributes={"messaging.system": "kafka"}):
                pass
    provider.force_flush()
    provider.shutdown()

    expected = {}
    kinds = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
    codes = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
    for span in recorder.spans:
        context = span.get_span_context()
        trace_id = format(context.trace_id, "032x")
        expected.setdefault(trace_id, []).append(
            {
                "span_id": format(context.span_id, "016x"),
                "parent_span_id": format(span.parent.span_id, "016x") if span.parent else "",
                "name": span.name,
                "kind": kinds[span.kind],
                "start": span.start_time,
                "end": span.end_time,
                "attributes": attributes_of(span.attributes),
                "resource": attributes_of(span.resource.attributes),
                "scope": {"name": span.instrumentation_scope.name, "version": span.instrumentation_scope.version},
                "status": {"code": codes[span.status.status_code], "message": span.status.description or ""},
                "events": [
                    {"name": event.name, "time": event.timestamp, "attributes": attributes_of(event.attributes)}
                    for event in span.events
                ],
                "links": [
                    {
                        "trace_id": format(link.context.trace_id, "032x"),
                        "span_id": format(link.context.span_id, "016x"),
                        "attributes": attributes_of(link.attributes),
                    }
                    for link in span.links
                ],
            }
        )
    with open(args.out, "w") as handle:
        json.dump(expected, handle)


if __name__ == "__main__":
    main()
