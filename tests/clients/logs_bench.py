#!/usr/bin/env python3
"""Figures for logs: ingest lines/s over Loki JSON push, then trace-ID lookup latency from blocks.

Usage: logs_bench.py <path to vivace binary> [pushes of 1000 lines, default 200]
Starts a scratch vivace, pushes, stops it gracefully (the head becomes blocks), restarts and
times /api/logs?traceID= and ?service=&q= lookups. Not part of the test suite."""
import json, os, subprocess, sys, tempfile, time, urllib.request, random, threading, socket
binary = sys.argv[1]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
data = tempfile.mkdtemp(prefix="vivace-logs-bench-")
http, grpc, otlp = free_port(), free_port(), free_port()
cfg = f"""server:
  http_listen_port: {http}
  log_level: warn
distributor:
  receivers:
    otlp:
      protocols:
        grpc: {{enabled: true, endpoint: 127.0.0.1:{grpc}}}
        http: {{enabled: true, endpoint: 127.0.0.1:{otlp}}}
ingester:
  wal_path: {data}/wal
storage:
  trace:
    backend: local
    local: {{path: {data}/blocks}}
logs:
  max_block_bytes: 16777216
"""
open(f"{data}/c.yaml", "w").write(cfg)
def start():
    p = subprocess.Popen([binary, "serve", "--config", f"{data}/c.yaml"], stderr=open(f"{data}/log", "a"))
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{http}/ready").status == 200: return p
        except Exception: time.sleep(0.05)
    raise SystemExit("not ready")
p = start()
traces = [os.urandom(16).hex() for _ in range(2000)]
BATCH, BATCHES, THREADS = 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 200, 4
base = time.time_ns() - 3600 * 10**9
def body(i):
    values = []
    for j in range(BATCH):
        t = traces[((i * BATCH + j) // 100) % len(traces)]
        values.append([str(base + i * BATCH + j), f"GET /api/cart/{j} status=200 duration_ms={j%97} traceID={t} user=u{j%13}"])
    return json.dumps({"streams": [{"stream": {"service_name": f"svc{i%5}", "level": "info"}, "values": values}]}).encode()
bodies = [body(i) for i in range(BATCHES)]
def worker(k):
    for i in range(k, BATCHES, THREADS):
        r = urllib.request.Request(f"http://127.0.0.1:{http}/loki/api/v1/push", data=bodies[i], headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(r).status == 204
start_t = time.time()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
[t.start() for t in ts]; [t.join() for t in ts]
el = time.time() - start_t
lines = BATCH * BATCHES
print(f"ingest: {lines} lines in {el:.2f}s = {lines/el:.0f} lines/s (Loki JSON, {THREADS} clients, {BATCH}-line pushes, wal_fsync always)")
p.terminate(); p.wait()
p = start()
blocks = sum(1 for _ in os.scandir(f"{data}/blocks-logs/single-tenant"))
lat = []
for t in random.sample(traces, 200):
    s = time.perf_counter()
    out = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http}/api/logs?traceID={t}"))
    lat.append((time.perf_counter() - s) * 1000)
    assert len(out["logs"]) == lines // len(traces), len(out["logs"])
lat.sort()
print(f"trace-ID lookup from {blocks} blocks: p50 {lat[len(lat)//2]:.1f} ms, p90 {lat[int(len(lat)*.9)]:.1f} ms, max {lat[-1]:.1f} ms ({lines//len(traces)} lines per trace)")
lat = []
for i in range(50):
    s = time.perf_counter()
    out = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http}/api/logs?service=svc{i%5}&q=cart/7&limit=100"))
    lat.append((time.perf_counter() - s) * 1000)
lat.sort()
print(f"service+text search (newest 100): p50 {lat[len(lat)//2]:.1f} ms, max {lat[-1]:.1f} ms")
p.terminate(); p.wait()
import shutil; shutil.rmtree(data)
