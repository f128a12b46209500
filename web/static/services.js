// Services page: every service vivace has seen, with request rate, error rate and p99 over
// the last hour. The numbers come from the metrics-generator's span metrics (counted for every
// span as it arrives, so the page stays fast under load); from TraceQL metrics when those are
// not available, or from Prometheus when prometheus.url is set. Rates are over the time the
// data covers: a minute after startup, "last hour" is that minute's rate.
import { getJSON, h, formatRate, formatPercent, formatDuration, formatSpan, describeError, usesPrometheus, nowSeconds, ApiError } from './common.js';

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

/** {rows: Map(name → {rate, errorRatio, p99Ms}), note} from the generator; null when it cannot answer. */
async function fromGenerator() {
  try {
    const answer = await getJSON('/api/ui/services', { since: WINDOW });
    const rows = new Map(answer.services.map((one) => [one.name, { rate: one.rate, errorRatio: one.errorRatio, p99Ms: one.p99Ms }]));
    const covered = answer.windowSeconds < WINDOW - 30 ? `last ${formatSpan(answer.windowSeconds)} (all the data of the last hour)` : 'last hour';
    return { rows, note: `${covered} · from span metrics` };
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

async function fromQueries() {
  let rates;
  let errors;
  let p99s;
  if (usesPrometheus) {
    const server = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"';
    [rates, errors, p99s] = await Promise.all([
      promByService(`sum by (service) (rate(traces_spanmetrics_calls_total{${server}}[1h]))`),
      promByService(`sum by (service) (rate(traces_spanmetrics_calls_total{${server},status_code="STATUS_CODE_ERROR"}[1h]))`),
      promByService(`histogram_quantile(0.99, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${server}}[1h])))`),
    ]);
  } else {
    [rates, errors, p99s] = await Promise.all([
      tempoByService('{kind=server || kind=consumer} | rate() by (resource.service.name)'),
      tempoByService('{(kind=server || kind=consumer) && status=error} | rate() by (resource.service.name)'),
      tempoByService('{kind=server || kind=consumer} | quantile_over_time(duration, .99) by (resource.service.name)'),
    ]);
  }
  const rows = new Map();
  for (const [name, rate] of rates) {
    rows.set(name, { rate, errorRatio: rate ? (errors.get(name) || 0) / rate : 0, p99Ms: p99s.has(name) ? p99s.get(name) * 1000 : undefined });
  }
  return { rows, note: `last hour · from ${usesPrometheus ? 'Prometheus' : 'TraceQL metrics'}` };
}

function render(names, rows) {
  tbody.replaceChildren(...names.map((name) => {
    const row = rows?.get(name);
    return h('tr', { 'data-service': name },
      h('td', {}, h('a', { href: `/services/${encodeURIComponent(name)}` }, name)),
      h('td', { class: 'num rate' }, formatRate(row ? row.rate : undefined)),
      h('td', { class: row?.errorRatio > 0.01 ? 'num errors error' : 'num errors' }, formatPercent(row ? row.errorRatio : undefined)),
      h('td', { class: 'num p99' }, formatDuration(row ? row.p99Ms : undefined)));
  }));
}

/** Service names from the tags API (a search over stored spans: the fallback's list). */
async function taggedNames() {
  const answer = await getJSON('/api/v2/search/tag/resource.service.name/values');
  return (answer.tagValues || []).map((value) => value.value);
}

async function load() {
  let names = [];
  let figures = null;
  try {
    // The generator's series name every service that sent a span: no search is needed.
    figures = !usesPrometheus ? await fromGenerator() : null;
    if (figures) {
      names = [...figures.rows.keys()];
    } else {
      names = await taggedNames();
      figures = await fromQueries().catch((error) => {
        status.textContent = describeError(error, 'RED metrics');
        return null;
      });
    }
  } catch (error) {
    status.textContent = describeError(error, 'services');
    status.className = 'status error';
    return;
  }
  names = [...new Set([...names, ...(figures ? figures.rows.keys() : [])])].sort();
  if (!names.length) {
    status.textContent = 'No services yet: send traces over OTLP, or run vivace with --demo.';
    return;
  }
  render(names, figures?.rows);
  if (figures) status.textContent = `${names.length} services · ${figures.note}`;
  document.getElementById('services').dataset.ready = 'true';
}

load();
