// One service's RED page: request rate, error rate and p50/p90/p99 latency with exemplar
// points (a click opens that trace), per-operation table, service.version comparison and
// PromQL panels. Series come from the metrics-generator's span metrics (already counted for
// every span, so the page is fast under load), and from TraceQL metrics for what those lack
// (versions; everything when the generator is off), or from Prometheus when prometheus.url
// is configured.
import {
  getJSON, h, lineChart, tempoSeries, promSeries, promExemplars, describeError, showState, formatRate,
  formatPercent, formatDuration, formatSpan, formatTime, quote, usesPrometheus, stepFor, nowSeconds, ApiError,
} from './common.js';

const service = document.getElementById('service').dataset.service;
const rangeSelect = document.getElementById('range');
const source = document.getElementById('source');
const summary = document.getElementById('summary');
const COLORS = { p50: 'hsl(200 70% 50%)', p90: 'hsl(35 85% 50%)', p99: 'hsl(350 75% 55%)' };
// A service's incoming requests: the calls it serves and the messages it consumes.
const selector = `resource.service.name = ${quote(service)} && (kind = server || kind = consumer)`;

document.getElementById('search-link').href = `/search?${new URLSearchParams({ q: `{ ${selector} }` })}`;

function window_() {
  const end = nowSeconds();
  const seconds = Number(rangeSelect.value);
  return { start: end - seconds, end, step: stepFor(seconds), seconds };
}

async function tempoRange(query, exemplars) {
  const { start, end, step } = window_();
  return tempoSeries(await getJSON('/api/metrics/query_range', { q: query, start, end, step: `${step}s`, exemplars }));
}

async function promRange(query) {
  const { start, end, step } = window_();
  return promSeries(await getJSON('/api/ui/prom/query_range', { query, start, end, step }));
}

function plot(id) {
  return document.querySelector(`#${id} .plot`);
}

async function chart(id, load) {
  const container = plot(id);
  try {
    const { series, exemplars, unit, format, from } = await load();
    const { start, end } = window_();
    lineChart(container, { series, exemplars, unit, format, start: Math.max(start, from || 0) * 1000, end: end * 1000 });
  } catch (error) {
    showState(container, 'error', describeError(error, 'this chart'));
  }
}

// ---- the generator's span metrics ---------------------------------------------------------

/** The generator's numbers for this service over the range; null when it cannot answer (404). */
async function fromGenerator() {
  if (usesPrometheus) return null;
  try {
    return await getJSON(`/api/ui/services/${encodeURIComponent(service)}`, { since: window_().seconds });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

const percentTicks = (value) => `${+(value).toPrecision(3)} %`;
const rateTicks = (value) => formatRate(value);

function showSummary(figures, note) {
  summary.replaceChildren(
    h('span', { class: 'figure', 'data-figure': 'rate' }, formatRate(figures.rate)), ' requests · ',
    h('span', { class: figures.errorRatio > 0.01 ? 'figure error' : 'figure', 'data-figure': 'errors' }, formatPercent(figures.errorRatio)), ' errors · p99 ',
    h('span', { class: 'figure', 'data-figure': 'p99' }, formatDuration(figures.p99Ms)), ` · ${note}`);
}

function loadRedFromGenerator(answer) {
  const covered = answer.windowSeconds < answer.sinceSeconds - 30 ? `over the last ${formatSpan(answer.windowSeconds)} (all the data in this range)` : 'over this range';
  showSummary(answer, `${covered}, from span metrics`);
  // The time axis spans the data, not an hour of which it fills the last minute.
  const from = window_().end - answer.windowSeconds - answer.stepSeconds;
  const points = (pick) => answer.series.filter((point) => pick(point) !== null && pick(point) !== undefined).map((point) => [point.tMs, pick(point)]);
  chart('chart-rate', async () => ({ series: [{ name: 'requests/s', color: 'hsl(200 70% 50%)', points: points((point) => point.rate) }], format: rateTicks, from }));
  chart('chart-errors', async () => ({ series: [{ name: 'errors %', color: 'hsl(350 75% 55%)', points: points((point) => point.errorRatio === null ? null : point.errorRatio * 100) }], format: percentTicks, from }));
  chart('chart-latency', async () => ({
    series: ['p50', 'p90', 'p99'].map((name) => ({ name, color: COLORS[name], points: points((point) => point[`${name}Ms`]) })),
    exemplars: answer.exemplars.map((one) => ({ tMs: one.tMs, value: one.valueMs, traceId: one.traceId, label: 'latency' })),
    unit: 'ms',
    from,
  }));
}

// ---- the three RED charts from queries ---------------------------------------------------

/** Points of `errors` as a percentage of `requests` at the same timestamps. */
function ratioPoints(errors, requests) {
  const totals = new Map((requests[0]?.points || []).map(([t, value]) => [t, value]));
  const failed = new Map((errors[0]?.points || []).map(([t, value]) => [t, value]));
  return [...totals].filter(([, total]) => total > 0).map(([t, total]) => [t, ((failed.get(t) || 0) / total) * 100]);
}

function loadRed() {
  const { seconds } = window_();
  const promWindow = `${Math.max(60, stepFor(seconds) * 4)}s`;
  const promSelector = `service=${quote(service)},span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"`;
  summary.textContent = '';
  const requests = usesPrometheus
    ? promRange(`sum(rate(traces_spanmetrics_calls_total{${promSelector}}[${promWindow}]))`)
    : tempoRange(`{ ${selector} } | rate()`);
  chart('chart-rate', async () => {
    const series = await requests;
    return { series: series.map((one) => ({ name: 'requests/s', color: 'hsl(200 70% 50%)', points: one.points })), format: rateTicks };
  });
  chart('chart-errors', async () => {
    const errors = usesPrometheus
      ? await promRange(`sum(rate(traces_spanmetrics_calls_total{${promSelector},status_code="STATUS_CODE_ERROR"}[${promWindow}]))`)
      : await tempoRange(`{ ${selector} && status = error } | rate()`);
    return { series: [{ name: 'errors %', color: 'hsl(350 75% 55%)', points: ratioPoints(errors, await requests) }], format: percentTicks };
  });
  chart('chart-latency', async () => {
    if (usesPrometheus) {
      const quantiles = [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]];
      const results = await Promise.all(quantiles.map(([, q]) =>
        promRange(`histogram_quantile(${q}, sum by (le) (rate(traces_spanmetrics_latency_bucket{${promSelector}}[${promWindow}])))`)));
      const { start, end } = window_();
      let exemplars = [];
      try {
        const answer = await getJSON('/api/ui/prom/query_exemplars', { query: `traces_spanmetrics_latency_bucket{${promSelector}}`, start, end });
        exemplars = promExemplars(answer).map((one) => ({ ...one, value: one.value * 1000 }));
      } catch {
        exemplars = [];
      }
      return {
        series: results.map((result, index) => ({ name: quantiles[index][0], color: COLORS[quantiles[index][0]], points: (result[0]?.points || []).map(([t, v]) => [t, v * 1000]) })),
        exemplars,
        unit: 'ms',
      };
    }
    const series = await tempoRange(`{ ${selector} } | quantile_over_time(duration, .5, .9, .99)`, 100);
    const out = [];
    const exemplars = [];
    for (const one of series) {
      const p = Number(one.labels.p);
      const name = p === 0.5 ? 'p50' : p === 0.9 ? 'p90' : p === 0.99 ? 'p99' : `p${p}`;
      out.push({ name, color: COLORS[name] || 'gray', points: one.points.map(([t, v]) => [t, v * 1000]), p });
      for (const exemplar of one.exemplars) exemplars.push({ ...exemplar, value: exemplar.value * 1000, traceId: exemplar.traceId.padStart(32, '0'), label: name });
    }
    out.sort((a, b) => a.p - b.p);
    const seen = new Set();
    return { series: out, exemplars: exemplars.filter((one) => one.traceId && !seen.has(one.traceId) && seen.add(one.traceId)), unit: 'ms' };
  });
}

// ---- tables: operations and versions ----------------------------------------------------

/** Instant values keyed by one label: TraceQL metrics or PromQL. */
async function instantBy(tempoQuery, key, promQuery, promKey) {
  const { start, end } = window_();
  const out = new Map();
  if (usesPrometheus) {
    const answer = await getJSON('/api/ui/prom/query', { query: promQuery, time: end });
    for (const series of (answer.data && answer.data.result) || []) out.set(series.metric[promKey] || '', Number(series.value[1]));
    return out;
  }
  const answer = await getJSON('/api/metrics/query', { q: tempoQuery, start, end });
  for (const series of answer.series || []) {
    const label = (series.labels || []).find((one) => one.key === key);
    if (label) out.set(String(Object.values(label.value)[0]), Number(series.value));
  }
  return out;
}

function operationRows(tbody, rows) {
  if (!rows.length) {
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No server spans in this range.')));
    return;
  }
  tbody.replaceChildren(...rows.map((row) => h('tr', {},
    h('td', {}, h('a', { href: `/search?${new URLSearchParams({ q: `{ ${selector} && name = ${quote(row.name)} }` })}` }, row.name)),
    h('td', { class: 'num' }, formatRate(row.rate)),
    h('td', { class: row.errorRatio > 0.01 ? 'num error' : 'num' }, formatPercent(row.errorRatio)),
    h('td', { class: 'num' }, formatDuration(row.p99Ms)))));
}

async function loadOperations(generator) {
  const tbody = document.querySelector('#operations tbody');
  if (generator?.operations) {
    operationRows(tbody, generator.operations);
    return;
  }
  const { seconds } = window_();
  const promSelector = `service=${quote(service)},span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"`;
  try {
    const [rates, errors, p99s] = await Promise.all([
      instantBy(`{ ${selector} } | rate() by (name)`, 'name', `sum by (span_name) (rate(traces_spanmetrics_calls_total{${promSelector}}[${seconds}s]))`, 'span_name'),
      instantBy(`{ ${selector} && status = error } | rate() by (name)`, 'name', `sum by (span_name) (rate(traces_spanmetrics_calls_total{${promSelector},status_code="STATUS_CODE_ERROR"}[${seconds}s]))`, 'span_name'),
      instantBy(`{ ${selector} } | quantile_over_time(duration, .99) by (name)`, 'name', `histogram_quantile(0.99, sum by (span_name, le) (rate(traces_spanmetrics_latency_bucket{${promSelector}}[${seconds}s])))`, 'span_name'),
    ]);
    const names = [...rates.keys()].sort((a, b) => rates.get(b) - rates.get(a));
    operationRows(tbody, names.map((name) => ({
      name, rate: rates.get(name), errorRatio: rates.get(name) ? (errors.get(name) || 0) / rates.get(name) : 0,
      p99Ms: p99s.has(name) ? p99s.get(name) * 1000 : undefined,
    })));
  } catch (error) {
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 4, class: 'error' }, describeError(error, 'operations'))));
  }
}

/** Slowest and failing traces of one version, from search (works without metrics). */
async function versionTraces(version) {
  const { start, end } = window_();
  const base = `${selector} && resource.service.version = ${quote(version)}`;
  const [failing, recent] = await Promise.all([
    getJSON('/api/search', { q: `{ ${base} && status = error }`, start, end, limit: 3 }),
    getJSON('/api/search', { q: `{ ${base} }`, start, end, limit: 50 }),
  ]);
  const slowest = (recent.traces || []).sort((a, b) => (b.durationMs || 0) - (a.durationMs || 0)).slice(0, 3);
  const link = (trace, kind) => h('a', { href: `/trace/${trace.traceID}`, class: kind, title: `${trace.rootTraceName} · ${formatTime(trace.startTimeUnixNano)}` },
    `${kind === 'failing' ? 'failed' : 'slow'} ${formatDuration(trace.durationMs || 0)}`);
  return [...(failing.traces || []).map((trace) => link(trace, 'failing')), ...slowest.map((trace) => link(trace, 'slow'))];
}

async function loadVersions() {
  const tbody = document.querySelector('#versions tbody');
  let versions = [];
  try {
    const answer = await getJSON('/api/v2/search/tag/resource.service.version/values', { q: `{ resource.service.name = ${quote(service)} }` });
    versions = (answer.tagValues || []).map((value) => value.value).sort();
  } catch (error) {
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'error' }, describeError(error, 'versions'))));
    return;
  }
  if (!versions.length) {
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'This service reports no service.version.')));
    return;
  }
  const cells = new Map(versions.map((version) => [version, {
    rate: h('td', { class: 'num' }, '…'), errors: h('td', { class: 'num' }, '…'), p99: h('td', { class: 'num' }, '…'), traces: h('td', { class: 'traces' }, '…'),
  }]));
  tbody.replaceChildren(...versions.map((version) => {
    const cell = cells.get(version);
    return h('tr', {}, h('td', {}, version), cell.rate, cell.errors, cell.p99, cell.traces);
  }));
  for (const version of versions) {
    versionTraces(version)
      .then((links) => cells.get(version).traces.replaceChildren(...(links.length ? links : ['none'])))
      .catch((error) => cells.get(version).traces.replaceChildren(describeError(error, 'traces')));
  }
  if (usesPrometheus) {
    for (const cell of cells.values()) for (const td of [cell.rate, cell.errors, cell.p99]) td.textContent = '–';
    return;
  }
  const key = 'resource.service.version';
  try {
    const [rates, errors, p99s] = await Promise.all([
      instantBy(`{ ${selector} } | rate() by (${key})`, key),
      instantBy(`{ ${selector} && status = error } | rate() by (${key})`, key),
      instantBy(`{ ${selector} } | quantile_over_time(duration, .99) by (${key})`, key),
    ]);
    for (const [version, cell] of cells) {
      cell.rate.textContent = formatRate(rates.get(version));
      cell.errors.textContent = formatPercent(rates.get(version) ? (errors.get(version) || 0) / rates.get(version) : undefined);
      cell.p99.textContent = formatDuration(p99s.has(version) ? p99s.get(version) * 1000 : undefined);
    }
  } catch (error) {
    for (const cell of cells.values()) for (const td of [cell.rate, cell.errors, cell.p99]) td.textContent = '–';
    source.textContent += ` ${describeError(error, 'per-version metrics')}`;
  }
}

// ---- PromQL panels (kept in the URL, so a page with panels can be shared) ---------------

function panels() {
  return new URLSearchParams(location.search).getAll('panel');
}

function renderPanels() {
  const container = document.getElementById('panels');
  container.replaceChildren(...panels().map((query, index) => {
    const figure = h('figure', { class: 'chart' },
      h('figcaption', {}, h('code', {}, query), ' ', h('button', { type: 'button', class: 'ghost', 'aria-label': 'Remove panel', onclick: () => {
        const params = new URLSearchParams(location.search);
        const kept = panels().filter((_, other) => other !== index);
        params.delete('panel');
        for (const one of kept) params.append('panel', one);
        history.replaceState(null, '', `${location.pathname}?${params}`);
        renderPanels();
      } }, '✕')),
      h('div', { class: 'plot' }));
    const container_ = figure.querySelector('.plot');
    if (!usesPrometheus) {
      showState(container_, 'empty', 'PromQL panels read Prometheus: set prometheus.url in the config.');
    } else {
      promRange(query)
        .then((series) => {
          const { start, end } = window_();
          lineChart(container_, {
            series: series.map((one, which) => ({ name: JSON.stringify(one.labels), color: `hsl(${(which * 67) % 360} 65% 50%)`, points: one.points })),
            start: start * 1000, end: end * 1000,
          });
        })
        .catch((error) => showState(container_, 'error', describeError(error, 'this panel')));
    }
    return figure;
  }));
}

document.getElementById('promql-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = document.getElementById('promql');
  const query = input.value.trim();
  if (!query) return;
  const params = new URLSearchParams(location.search);
  params.append('panel', query);
  history.replaceState(null, '', `${location.pathname}?${params}`);
  input.value = '';
  renderPanels();
});

function loadAll() {
  const params = new URLSearchParams(location.search);
  params.set('range', rangeSelect.value);
  history.replaceState(null, '', `${location.pathname}?${params}`);
  const generation = ++loads;
  loadVersions();
  renderPanels();
  let note = '';
  fromGenerator()
    .catch((error) => {
      note = `${describeError(error, 'span metrics')} `;
      return null;
    })
    .then((generator) => {
      if (generation !== loads) return;
      if (generator) {
        source.textContent = 'Series from the metrics-generator\'s span metrics (server and consumer spans), versions from TraceQL metrics.';
        loadRedFromGenerator(generator);
      } else {
        source.textContent = note + (usesPrometheus
          ? 'Series from Prometheus (traces_spanmetrics_*), exemplars from query_exemplars.'
          : 'Series from vivace\'s TraceQL metrics over stored spans (server and consumer spans).');
        loadRed();
      }
      loadOperations(generator);
    });
}
let loads = 0;

const initialRange = new URLSearchParams(location.search).get('range');
if (initialRange && [...rangeSelect.options].some((option) => option.value === initialRange)) rangeSelect.value = initialRange;
rangeSelect.addEventListener('change', loadAll);
loadAll();
