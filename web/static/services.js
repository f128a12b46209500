// Services page: every service vivace has seen (tags API), with request rate, error rate and
// p99 over the last hour from TraceQL metrics (or Prometheus when prometheus.url is set).
import { getJSON, h, formatRate, formatPercent, formatDuration, describeError, usesPrometheus, nowSeconds } from './common.js';

const status = document.getElementById('status');
const tbody = document.querySelector('#services tbody');
const WINDOW = 3600;

/** Instant values by service name: TraceQL metrics `by (resource.service.name)`. */
async function tempoByService(query) {
  const end = nowSeconds();
  const answer = await getJSON('/api/metrics/query', { q: query, start: end - WINDOW, end });
  const out = new Map();
  for (const series of answer.series || []) {
    const label = (series.labels || []).find((one) => one.key === 'resource.service.name');
    const name = label?.value?.stringValue;
    if (name !== undefined) out.set(name, Number(series.value));
  }
  return out;
}

/** Instant values by service name from Prometheus' span metrics. */
async function promByService(query) {
  const answer = await getJSON('/api/ui/prom/query', { query, time: nowSeconds() });
  const out = new Map();
  for (const series of (answer.data && answer.data.result) || []) out.set(series.metric.service, Number(series.value[1]));
  return out;
}

async function load() {
  let names;
  try {
    const answer = await getJSON('/api/v2/search/tag/resource.service.name/values');
    names = (answer.tagValues || []).map((value) => value.value).sort();
  } catch (error) {
    status.textContent = describeError(error, 'services');
    status.className = 'status error';
    return;
  }
  if (!names.length) {
    status.textContent = 'No services yet: send traces over OTLP, or run vivace with --demo.';
    return;
  }
  const render = (rates, errors, p99s) => tbody.replaceChildren(...names.map((name) => {
    const rate = rates?.get(name);
    const errorRate = rate ? (errors?.get(name) || 0) / rate : rates ? 0 : undefined;
    return h('tr', {},
      h('td', {}, h('a', { href: `/services/${encodeURIComponent(name)}` }, name)),
      h('td', { class: 'num' }, formatRate(rate)),
      h('td', { class: errorRate > 0.01 ? 'num error' : 'num' }, formatPercent(errorRate)),
      h('td', { class: 'num' }, formatDuration(p99s?.has(name) ? p99s.get(name) * 1000 : undefined)));
  }));
  render();
  status.textContent = `${names.length} services · last hour`;
  try {
    let rates;
    let errors;
    let p99s;
    if (usesPrometheus) {
      const server = 'span_kind="SPAN_KIND_SERVER"';
      [rates, errors, p99s] = await Promise.all([
        promByService(`sum by (service) (rate(traces_spanmetrics_calls_total{${server}}[1h]))`),
        promByService(`sum by (service) (rate(traces_spanmetrics_calls_total{${server},status_code="STATUS_CODE_ERROR"}[1h]))`),
        promByService(`histogram_quantile(0.99, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${server}}[1h])))`),
      ]);
    } else {
      [rates, errors, p99s] = await Promise.all([
        tempoByService('{kind=server} | rate() by (resource.service.name)'),
        tempoByService('{kind=server && status=error} | rate() by (resource.service.name)'),
        tempoByService('{kind=server} | quantile_over_time(duration, .99) by (resource.service.name)'),
      ]);
    }
    render(rates, errors, p99s);
  } catch (error) {
    status.textContent = `${names.length} services · ${describeError(error, 'RED metrics')}`;
  }
}

load();
