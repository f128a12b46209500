#!/usr/bin/env python3
"""Sends one trace with py_zipkin, a real Zipkin v1 tracer, to a Zipkin v1 endpoint
(`/api/v1/spans`) in V1_THRIFT (py_zipkin's default) or V1_JSON, through a transport that
POSTs each payload as py_zipkin hands it over. Prints one JSON line of what was sent for the
test to look for: the trace ID (32 hex digits) and the start of the span whose time is fixed.

The trace, in service SERVICE unless said otherwise:
  checkout   SERVER, the root (sleeps 20 ms), tag http.method=GET
    db query CLIENT, starts at T0 + 10 ms and lasts 50 ms, tags db=orders and rows=3,
             an `sa` address (postgres at 10.0.0.7:5432) and an annotation "retry"
      reserve SERVER in SERVICE-inventory, continuing the trace as a second process would: no
              timestamp or duration on the wire, only sr/ss (sleeps 10 ms)
    render   local (an "lc" tag), starts at T0 + 70 ms and lasts 5 ms

Usage: zipkin_v1_send.py --encoding V1_THRIFT|V1_JSON --endpoint URL --service NAME
                         [--trace-id-bits 64|128]
"""
import argparse
import json
import os
import time
import urllib.request

# py_zipkin 0.x ships protoc-3 generated code for its (unused here) V2_PROTO3 encoder; with
# protobuf >= 4 it only imports with the pure-Python backend.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

from py_zipkin import Kind  # noqa: E402
from py_zipkin.encoding import Encoding  # noqa: E402
from py_zipkin.transport import BaseTransportHandler  # noqa: E402
from py_zipkin.util import generate_random_64bit_string  # noqa: E402
from py_zipkin.zipkin import ZipkinAttrs, zipkin_span  # noqa: E402

CONTENT_TYPES = {
    Encoding.V1_THRIFT: "application/x-thrift",
    Encoding.V1_JSON: "application/json",
}


class PostTransport(BaseTransportHandler):
    """POSTs every payload to the v1 endpoint; anything but 202 fails the script."""

    def __init__(self, endpoint, encoding):
        super().__init__()
        self.endpoint = endpoint
        self.content_type = CONTENT_TYPES[encoding]

    def get_max_payload_bytes(self):
        return None

    def send(self, payload):
        body = payload.encode("utf-8") if isinstance(payload, str) else payload
        request = urllib.request.Request(
            self.endpoint, data=body, method="POST",
            headers={"Content-Type": self.content_type},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 202:
                raise SystemExit(f"{self.endpoint} answered {response.status}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoding", required=True, choices=["V1_THRIFT", "V1_JSON"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--trace-id-bits", type=int, default=128, choices=[64, 128])
    arguments = parser.parse_args()
    encoding = Encoding[arguments.encoding]
    transport = PostTransport(arguments.endpoint, encoding)
    t0 = time.time()
    with zipkin_span(
        service_name=arguments.service,
        span_name="checkout",
        transport_handler=transport,
        sample_rate=100.0,
        encoding=encoding,
        kind=Kind.SERVER,
        use_128bit_trace_id=arguments.trace_id_bits == 128,
        binary_annotations={"http.method": "GET"},
    ) as root:
        trace_id = root.zipkin_attrs.trace_id
        with zipkin_span(
            service_name=arguments.service,
            span_name="db query",
            kind=Kind.CLIENT,
            timestamp=t0 + 0.010,
            duration=0.050,
            binary_annotations={"db": "orders"},
        ) as client:
            client.update_binary_annotations({"rows": 3})
            client.add_sa_binary_annotation(port=5432, service_name="postgres", host="10.0.0.7")
            client.add_annotation("retry", timestamp=t0 + 0.020)
            client_span_id = client.zipkin_attrs.span_id
        with zipkin_span(
            service_name=arguments.service,
            span_name="render",
            timestamp=t0 + 0.070,
            duration=0.005,
            # A v1 local span carries its host only on its annotations: "lc" (local component)
            # is how v1 names one.
            binary_annotations={"lc": "templates"},
        ):
            pass
        time.sleep(0.020)
    # A second process continuing the trace: its server span is "shared", so py_zipkin leaves
    # the timestamp and duration to the sr/ss annotations.
    with zipkin_span(
        service_name=arguments.service + "-inventory",
        span_name="reserve",
        transport_handler=transport,
        encoding=encoding,
        kind=Kind.SERVER,
        zipkin_attrs=ZipkinAttrs(
            trace_id=trace_id,
            span_id=generate_random_64bit_string(),
            parent_span_id=client_span_id,
            flags="0",
            is_sampled=True,
        ),
    ):
        time.sleep(0.010)
    print(json.dumps({
        "trace_id": trace_id.rjust(32, "0"),
        "db_query_start_us": int((t0 + 0.010) * 1_000_000),
    }))


if __name__ == "__main__":
    main()
