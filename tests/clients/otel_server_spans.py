#!/usr/bin/env python3
"""Sends server spans with the real OpenTelemetry Python SDK over OTLP/HTTP, the resource taken
from the environment as a deployed application takes it (OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES).

Usage: otel_server_spans.py --endpoint URL --spans N [--errors K]
Prints the resource attributes the SDK exported, as JSON.
"""
import argparse
import json

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--spans", type=int, default=20)
    parser.add_argument("--errors", type=int, default=0)
    args = parser.parse_args()

    resource = Resource.create()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint + "/v1/traces")))
    tracer = provider.get_tracer("vivace.sdk.test")
    for index in range(args.spans):
        with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as span:
            if index < args.errors:
                span.set_status(Status(StatusCode.ERROR, "declined"))
    provider.shutdown()
    print(json.dumps(dict(resource.attributes)))


if __name__ == "__main__":
    main()
