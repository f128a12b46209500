#!/usr/bin/env python3
"""Sends logs to vivace with the real OpenTelemetry Python SDK logs exporter, from inside spans,
and prints what was sent as JSON: [{"traceId","spanId","body","severityText"}] in emit order.

Usage: otel_logs.py --protocol grpc|http --endpoint URL --traces N --lines M --service NAME

The standard `logging` module is bridged to OpenTelemetry with the SDK's LoggingHandler, as an
application would; records logged while a span is current carry its trace and span IDs.
"""
import argparse
import json
import logging
import time

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--traces", type=int, default=3)
    parser.add_argument("--lines", type=int, default=4)
    parser.add_argument("--service", default="logs-sdk-test")
    args = parser.parse_args()

    resource = Resource.create({"service.name": args.service, "deployment.environment": "test"})
    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=args.endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=args.endpoint.rstrip("/") + "/v1/logs")
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    logger = logging.getLogger("vivace-logs-test")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)

    tracer = TracerProvider(resource=resource).get_tracer("vivace-logs-test")
    sent = []
    for trace_index in range(args.traces):
        with tracer.start_as_current_span(f"request {trace_index}") as span:
            context = span.get_span_context()
            for line in range(args.lines):
                body = f"{args.protocol} trace {trace_index} line {line}"
                if line == args.lines - 1:
                    logger.error(body + " failed", extra={"retry": line, "http.route": "/pay"})
                    severity = "ERROR"
                    body += " failed"
                else:
                    logger.info(body, extra={"retry": line, "http.route": "/pay"})
                    severity = "INFO"
                sent.append(
                    {
                        "traceId": format(context.trace_id, "032x"),
                        "spanId": format(context.span_id, "016x"),
                        "body": body,
                        "severityText": severity,
                    }
                )
                # Distinct timestamps, so "in order" has one meaning.
                time.sleep(0.002)
    # Flushes the batch processor; an export failure is logged by the SDK and fails below.
    if not logger_provider.force_flush(10_000):
        raise SystemExit("log export did not finish")
    logger_provider.shutdown()
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
