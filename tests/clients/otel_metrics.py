#!/usr/bin/env python3
"""An application that sends its traces and its own metrics to vivace's OTLP ports with the
real OpenTelemetry Python SDK, as a user's service would.

Usage: otel_metrics.py --protocol grpc|http --endpoint URL --service NAME

Metrics (one export, forced at the end): a counter `app.orders` ({order}) +3 and +2 with
method=card; an up-down counter `app.queue.depth` +10 and -4; a histogram
`app.request.duration` (ms) recording 7, 30 and 800, each inside its own span so the SDK
attaches that span as the exemplar; an observable gauge `app.temperature` (Cel) at 21.5.
Prints a JSON object with the trace IDs (hex) of the histogram's spans.
"""
import argparse
import json

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    args = parser.parse_args()

    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = args.endpoint.replace("http://", "")
        span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        metric_exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=f"{args.endpoint}/v1/traces")
        metric_exporter = OTLPMetricExporter(endpoint=f"{args.endpoint}/v1/metrics")

    resource = Resource.create(
        {
            "service.name": args.service,
            "service.namespace": "shop",
            "service.instance.id": f"{args.service}-1",
            "deployment.environment": "test",
        }
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    # A long interval: the one export happens at force_flush, so the test knows the values.
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    tracer = tracer_provider.get_tracer("checkout-app", "1.2.3")
    meter = meter_provider.get_meter("checkout-app", "1.2.3")
    orders = meter.create_counter("app.orders", unit="{order}", description="Orders placed.")
    depth = meter.create_up_down_counter("app.queue.depth", description="Jobs waiting.")
    duration = meter.create_histogram("app.request.duration", unit="ms", description="Request latency.")
    meter.create_observable_gauge(
        "app.temperature",
        callbacks=[lambda options: [Observation(21.5, {"room": "server"})]],
        unit="Cel",
    )

    orders.add(3, {"method": "card"})
    orders.add(2, {"method": "card"})
    depth.add(10)
    depth.add(-4)
    trace_ids = []
    for value in (7, 30, 800):
        with tracer.start_as_current_span("GET /checkout") as span:
            duration.record(value, {"route": "/checkout"})
            trace_ids.append(format(span.get_span_context().trace_id, "032x"))

    assert tracer_provider.force_flush(30_000), "span export did not finish"
    assert meter_provider.force_flush(30_000), "metric export did not finish"
    meter_provider.shutdown()
    tracer_provider.shutdown()
    print(json.dumps({"trace_ids": trace_ids}))


if __name__ == "__main__":
    main()
