// Shared helpers of vivace's pages: API calls, formatting, colours, theme and the SVG chart.
// Plain ES module, no dependencies.

/** An API answer that was not 2xx: the status and the server's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET `path` (with `params`) and parse JSON; throws ApiError with the body's text otherwise. */
export async function getJSON(path, params) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch (error) {
    throw new ApiError(0, `vivace did not answer: ${error.message}`);
  }
  if (!response.ok) {
    const text = (await response.text()).trim();
    throw new ApiError(response.status, text || `${response.status} ${response.statusText}`);
  }
  return response.json();
}

/** Creates an element: `h('td', {class: 'num'}, 'text', child)`. */
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A panel's message: "no data" or an error, never a broken page. */
export function showState(container, kind, message) {
  container.replaceChildren(h('p', { class: kind === 'error' ? 'error' : 'empty' }, message));
}

/** Explains a failed panel: a 404 means the backend for it is not part of this vivace. */
export function describeError(error, what) {
  if (error instanceof ApiError && error.status === 404) return `No data for ${what}: the API behind it is not served by this vivace (${error.message}).`;
  return `Could not load ${what}: ${error.message}`;
}

/** Milliseconds as "812 µs", "12.3 ms", "1.24 s", "2m 3s". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
}

/** Unix nanoseconds (string) as a local date-time. */
export function formatTime(unixNano) {
  const ms = Number(BigInt(unixNano || '0') / 1000000n);
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

/** Requests per second as "2.8/s", "12.3/s", "6/min" or "1/h": never an exponent. */
export function formatRate(perSecond) {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return '–';
  if (perSecond === 0) return '0/s';
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 10) return `${+perSecond.toFixed(1)}/s`;
  if (perSecond >= 0.1) return `${+perSecond.toFixed(2)}/s`;
  const perMinute = perSecond * 60;
  if (perMinute >= 1) return `${+perMinute.toFixed(1)}/min`;
  return `${+(perSecond * 3600).toFixed(1)}/h`;
}

/** A ratio as "0.3 %", "3.8 %", "0.05 %": one decimal, two below 0.1 %. */
export function formatPercent(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '–';
  const percent = ratio * 100;
  if (percent === 0) return '0 %';
  return `${percent < 0.1 ? +percent.toFixed(2) : percent.toFixed(1)} %`;
}

/** Seconds as "45 s", "12 min", "1.5 h": how much time a figure covers. */
export function formatSpan(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${+(seconds / 3600).toFixed(1)} h`;
}

/** A stable colour per service name (hue from a string hash), readable in both themes. */
export function serviceColor(name) {
  let hash = 2166136261;
  for (let index = 0; index < name.length; index++) {
    hash ^= name.charCodeAt(index);
    hash = Math.imul(hash, 16777619);
  }
  const hue = (hash >>> 0) % 360;
  return `hsl(${hue} 62% 52%)`;
}

/** Base64 (trace JSON) to lowercase hex. */
export function base64ToHex(text) {
  if (!text) return '';
  const binary = atob(text);
  let hex = '';
  for (let index = 0; index < binary.length; index++) hex += binary.charCodeAt(index).toString(16).padStart(2, '0');
  return hex;
}

/** An OTLP JSON AnyValue as display text. */
export function anyValue(value) {
  if (!value) return '';
  if ('stringValue' in value) return value.stringValue;
  if ('intValue' in value) return String(value.intValue);
  if ('doubleValue' in value) return String(value.doubleValue);
  if ('boolValue' in value) return String(value.boolValue);
  if ('arrayValue' in value) return `[${(value.arrayValue.values || []).map(anyValue).join(', ')}]`;
  if ('kvlistValue' in value) return `{${(value.kvlistValue.values || []).map((kv) => `${kv.key}: ${anyValue(kv.value)}`).join(', ')}}`;
  if ('bytesValue' in value) return base64ToHex(value.bytesValue);
  return '';
}

/** A TraceQL string literal. */
export function quote(text) {
  return `"${String(text).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Theme toggle (button and `t`), `/` to the page's search field, `g s`-style jumps. */
function setupChrome() {
  const toggle = document.getElementById('theme-toggle');
  const flip = () => {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    localStorage.setItem('vivace-theme', next);
    window.dispatchEvent(new CustomEvent('themechange'));
  };
  toggle?.addEventListener('click', flip);
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === 't') flip();
    if (event.key === '/') {
      const field = document.querySelector('#query, #find, #promql');
      if (field) {
        event.preventDefault();
        field.focus();
      }
    }
  });
}
setupChrome();

/** Theme colours read from CSS variables, for canvas and SVG drawing. */
export function themeColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function niceTicks(min, max, count) {
  const span = max - min || 1;
  const step0 = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= step0) || step0;
  const ticks = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) ticks.push(value);
  return ticks;
}

/**
 * Draws a time-series chart into `container` as SVG.
 * series: [{name, color, points: [[tMs, value]]}]; exemplars: [{tMs, value, traceId, label}]
 * (drawn as dots that link to the trace). Fixed height: no layout shift when data arrives.
 */
export function lineChart(container, { series, exemplars = [], unit = '', start, end, format }) {
  const tickText = format || ((value) => `${+value.toPrecision(3)}${unit}`);
  const width = Math.max(container.clientWidth || 600, 280);
  const height = 200;
  const pad = { left: 48, right: 10, top: 10, bottom: 22 };
  const values = series.flatMap((one) => one.points.map((point) => point[1])).concat(exemplars.map((point) => point.value));
  const finite = values.filter((value) => Number.isFinite(value));
  const max = finite.length ? Math.max(...finite) * 1.1 || 1 : 1;
  const x = (t) => pad.left + ((t - start) / (end - start || 1)) * (width - pad.left - pad.right);
  const y = (value) => height - pad.bottom - (value / max) * (height - pad.top - pad.bottom);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'plot-svg', role: 'img' });
  for (const tick of niceTicks(0, max, 4)) {
    svg.append(s('line', { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: 'gridline' }));
    svg.append(s('text', { x: pad.left - 6, y: y(tick) + 4, class: 'tick', 'text-anchor': 'end' }, tickText(tick)));
  }
  const timeTicks = niceTicks(start, end, Math.max(2, Math.floor(width / 120)));
  for (const tick of timeTicks) {
    // Seconds too when the axis spans only a few minutes, so no two ticks read the same.
    const label = new Date(tick).toLocaleTimeString(undefined, { hour12: false, hour: '2-digit', minute: '2-digit', second: end - start < 300000 ? '2-digit' : undefined });
    svg.append(s('text', { x: x(tick), y: height - 6, class: 'tick', 'text-anchor': 'middle' }, label));
  }
  for (const one of series) {
    if (!one.points.length) continue;
    const points = one.points.filter((point) => Number.isFinite(point[1]));
    const path = points
      .map((point, index) => `${index ? 'L' : 'M'}${x(point[0]).toFixed(1)},${y(point[1]).toFixed(1)}`)
      .join('');
    // The plotted values ride along, so a test (or a curious user) can read what was drawn.
    svg.append(s('path', {
      d: path, class: 'series', stroke: one.color, fill: 'none',
      'data-series': one.name, 'data-points': points.length, 'data-last': points.length ? points[points.length - 1][1] : '',
    }, s('title', {}, one.name)));
  }
  for (const exemplar of exemplars) {
    if (!exemplar.traceId) continue;
    const link = s('a', { href: `/trace/${exemplar.traceId}`, class: 'exemplar', 'data-trace-id': exemplar.traceId, 'aria-label': `Exemplar trace ${exemplar.traceId}` },
      s('circle', { cx: x(exemplar.tMs), cy: y(exemplar.value), r: 4.5 }),
      s('title', {}, `${exemplar.label || ''} ${+exemplar.value.toPrecision(4)}${unit} · trace ${exemplar.traceId}`));
    svg.append(link);
  }
  const legend = h('div', { class: 'legend' }, series.map((one) => h('span', {}, h('i', { style: `background:${one.color}` }), one.name)));
  if (!finite.length) {
    container.replaceChildren(h('p', { class: 'empty plot-empty' }, 'No data in this range.'));
    return;
  }
  container.replaceChildren(svg, legend);
}

/** Series of a TraceQL metrics answer (tempo-api §2.9) as chart series and exemplars. */
export function tempoSeries(answer) {
  const label = (labels, key) => (labels || []).find((one) => one.key === key)?.value;
  return (answer.series || []).map((one) => ({
    labels: Object.fromEntries((one.labels || []).map((kv) => [kv.key, anyValue(kv.value)])),
    promLabels: one.promLabels || '',
    points: (one.samples || []).map((sample) => [Number(sample.timestampMs), Number(sample.value)]),
    exemplars: (one.exemplars || []).map((exemplar) => {
      const id = label(exemplar.labels, 'trace:id');
      return { tMs: Number(exemplar.timestampMs), value: Number(exemplar.value), traceId: id ? anyValue(id) : '' };
    }),
  }));
}

/** A Prometheus matrix answer as chart series (exemplars come from query_exemplars). */
export function promSeries(answer) {
  return ((answer.data && answer.data.result) || []).map((one) => ({
    labels: one.metric || {},
    points: (one.values || []).map(([t, value]) => [t * 1000, Number(value)]),
    exemplars: [],
  }));
}

/** Prometheus exemplars of `query_exemplars` as chart points. */
export function promExemplars(answer, traceLabel = 'traceID') {
  const out = [];
  for (const one of (answer.data || [])) {
    for (const exemplar of one.exemplars || []) {
      const traceId = exemplar.labels?.[traceLabel] || exemplar.labels?.trace_id || '';
      out.push({ tMs: exemplar.timestamp * 1000, value: Number(exemplar.value), traceId: traceId.padStart(32, '0') });
    }
  }
  return out;
}

/** Whether the service pages read Prometheus (`prometheus.url` configured). */
export const usesPrometheus = document.body.dataset.prometheus === 'true';

/** A step giving about 60 points over `seconds`. */
export function stepFor(seconds) {
  return Math.max(15, Math.round(seconds / 60));
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
