// Trace view: a virtualised waterfall (only visible rows are in the DOM, so 10,000+ spans stay
// fast), collapsible subtrees, critical path, span details, find-in-trace, a flame graph on a
// canvas and the trace's logs.
import { getJSON, h, formatDuration, formatTime, describeError, serviceColor, base64ToHex, anyValue, themeColor } from './common.js';

performance.mark('trace-script-start');

const root = document.getElementById('trace');
const traceId = root.dataset.traceId;
const summary = document.getElementById('summary');
const waterfall = document.getElementById('waterfall');
const axis = document.getElementById('axis');
const detail = document.getElementById('detail');
const findInput = document.getElementById('find');
const findCount = document.getElementById('find-count');
const criticalToggle = document.getElementById('critical');
const ROW = 24;

let spans = [];
let byId = new Map();
let traceStart = 0;
let traceEnd = 1;
let visible = [];
let collapsed = new Set();
let selected = null;
let critical = new Set();
let matches = [];
let matchIndex = -1;

const KINDS = { SPAN_KIND_SERVER: 'server', SPAN_KIND_CLIENT: 'client', SPAN_KIND_PRODUCER: 'producer', SPAN_KIND_CONSUMER: 'consumer', SPAN_KIND_INTERNAL: 'internal' };

/** Flattens Tempo's v2 JSON to spans with parent/children links and times in ms from start. */
function parse(answer) {
  const out = [];
  const resourceSpans = (answer.trace && answer.trace.resourceSpans) || answer.batches || [];
  for (const batch of resourceSpans) {
    const resource = (batch.resource && batch.resource.attributes) || [];
    const service = anyValue(resource.find((kv) => kv.key === 'service.name')?.value) || '<unknown service>';
    for (const scopeSpans of batch.scopeSpans || batch.instrumentationLibrarySpans || []) {
      const scope = scopeSpans.scope || scopeSpans.instrumentationLibrary || {};
      for (const span of scopeSpans.spans || []) {
        out.push({
          id: base64ToHex(span.spanId),
          parentId: base64ToHex(span.parentSpanId),
          name: span.name || '',
          service,
          kind: KINDS[span.kind] || 'unspecified',
          startNs: BigInt(span.startTimeUnixNano || '0'),
          endNs: BigInt(span.endTimeUnixNano || span.startTimeUnixNano || '0'),
          status: span.status || {},
          attributes: span.attributes || [],
          resource,
          scope,
          events: span.events || [],
          links: span.links || [],
          children: [],
          depth: 0,
        });
      }
    }
  }
  if (!out.length) return out;
  let minNs = out[0].startNs;
  let maxNs = out[0].endNs;
  for (const span of out) {
    if (span.startNs < minNs) minNs = span.startNs;
    if (span.endNs > maxNs) maxNs = span.endNs;
  }
  for (const span of out) {
    span.start = Number(span.startNs - minNs) / 1e6;
    span.end = Number(span.endNs - minNs) / 1e6;
    span.duration = span.end - span.start;
    span.error = span.status.code === 'STATUS_CODE_ERROR';
  }
  traceStart = 0;
  traceEnd = Number(maxNs - minNs) / 1e6 || 1;
  root.dataset.startNs = String(minNs);
  return out;
}

function buildTree() {
  byId = new Map(spans.map((span) => [span.id, span]));
  const roots = [];
  for (const span of spans) {
    const parent = span.parentId && byId.get(span.parentId);
    if (parent && parent !== span) parent.children.push(span);
    else roots.push(span);
  }
  const byStart = (a, b) => a.start - b.start;
  roots.sort(byStart);
  // Iterative depth assignment: deep traces must not overflow the stack.
  const stack = roots.map((span) => [span, 0]);
  while (stack.length) {
    const [span, depth] = stack.pop();
    span.depth = depth;
    span.children.sort(byStart);
    for (const child of span.children) stack.push([child, depth + 1]);
  }
  return roots;
}

/** The critical path: from each span, the latest-ending child, then the latest child ending
 *  before that one started, and so on (the spans the trace's end time waited for). */
function criticalPath(roots) {
  const path = new Set();
  const stack = roots.length ? [roots.reduce((a, b) => (b.end > a.end ? b : a))] : [];
  while (stack.length) {
    const span = stack.pop();
    path.add(span.id);
    let horizon = span.end;
    const children = [...span.children].sort((a, b) => b.end - a.end);
    for (const child of children) {
      if (child.end <= horizon + 1e-9) {
        stack.push(child);
        horizon = child.start;
      }
    }
  }
  return path;
}

let roots = [];
function computeVisible() {
  visible = [];
  const stack = [...roots].reverse();
  while (stack.length) {
    const span = stack.pop();
    visible.push(span);
    if (!collapsed.has(span.id)) for (let index = span.children.length - 1; index >= 0; index--) stack.push(span.children[index]);
  }
  waterfall.style.setProperty('--rows', visible.length);
  spacer.style.height = `${visible.length * ROW}px`;
}

const spacer = h('div', { class: 'spacer-rows' });
const rowLayer = h('div', { class: 'rows' });
waterfall.append(spacer);
spacer.append(rowLayer);

function percent(ms) {
  return ((ms - traceStart) / (traceEnd - traceStart)) * 100;
}

function renderRows() {
  const top = waterfall.scrollTop;
  const height = waterfall.clientHeight || 600;
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const last = Math.min(visible.length, Math.ceil((top + height) / ROW) + 10);
  const showCritical = criticalToggle.checked;
  const matchSet = new Set(matches.map((span) => span.id));
  const fragment = document.createDocumentFragment();
  for (let index = first; index < last; index++) {
    const span = visible[index];
    const hasChildren = span.children.length > 0;
    const open = !collapsed.has(span.id);
    const classes = ['row'];
    if (span === selected) classes.push('selected');
    if (span.error) classes.push('error');
    if (matchSet.has(span.id)) classes.push('match');
    if (showCritical && critical.has(span.id)) classes.push('critical');
    const left = percent(span.start);
    const width = Math.max(percent(span.end) - left, 0.15);
    const row = h('div', {
      class: classes.join(' '), role: 'treeitem', 'aria-level': span.depth + 1, 'aria-selected': span === selected ? 'true' : 'false',
      'aria-expanded': hasChildren ? String(open) : null, style: `top:${index * ROW}px`, dataset: { spanId: span.id, index },
    },
    h('div', { class: 'label', style: `padding-left:${Math.min(span.depth, 40) * 12 + 4}px` },
      hasChildren
        ? h('button', { type: 'button', class: 'toggle', tabindex: -1, 'aria-label': open ? 'Collapse' : 'Expand', dataset: { toggle: span.id } }, open ? '▾' : '▸')
        : h('span', { class: 'toggle leaf' }, ''),
      h('i', { class: 'swatch', style: `background:${serviceColor(span.service)}` }),
      h('span', { class: 'svc' }, span.service),
      h('span', { class: 'name' }, span.name),
      !open ? h('span', { class: 'badge' }, countDescendants(span)) : null),
    h('div', { class: 'bar-area' },
      h('div', { class: 'bar', style: `left:${left}%;width:${width}%;background:${serviceColor(span.service)}` }),
      h('span', { class: 'dur', style: left > 70 ? `right:${100 - left + 0.5}%` : `left:${left + width + 0.5}%` }, formatDuration(span.duration))));
    fragment.append(row);
  }
  rowLayer.replaceChildren(fragment);
}

function countDescendants(span) {
  let count = 0;
  const stack = [...span.children];
  while (stack.length) {
    const next = stack.pop();
    count++;
    stack.push(...next.children);
  }
  return count;
}

function renderAxis() {
  const ticks = [];
  // About one label per 90 px of the bar area, so narrow windows do not overlap them.
  const barWidth = (axis.clientWidth || 800) * 0.55;
  const count = Math.max(1, Math.min(5, Math.floor(barWidth / 90)));
  for (let index = 0; index <= count; index++) {
    const ms = traceStart + ((traceEnd - traceStart) * index) / count;
    ticks.push(h('span', { style: `left:${(index / count) * 100}%` }, formatDuration(ms)));
  }
  axis.replaceChildren(h('div', { class: 'axis-label' }, 'Service · span'), h('div', { class: 'axis-ticks' }, ticks));
}

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    renderRows();
  });
}
waterfall.addEventListener('scroll', schedule, { passive: true });
window.addEventListener('resize', () => {
  if (spans.length) renderAxis();
  schedule();
});

// ---- selection and details --------------------------------------------------------------

function attributeTable(title, attributes) {
  if (!attributes.length) return null;
  return h('section', {}, h('h3', {}, title), h('dl', { class: 'attrs' },
    attributes.flatMap((kv) => [h('dt', {}, kv.key), h('dd', {}, anyValue(kv.value))])));
}

function showDetail(span) {
  const kindLabel = span.kind;
  const statusCode = (span.status.code || 'STATUS_CODE_UNSET').replace('STATUS_CODE_', '').toLowerCase();
  detail.hidden = false;
  detail.replaceChildren(h('div', { class: 'detail-body' },
    h('div', { class: 'detail-head' },
      h('h2', {}, span.name),
      h('button', { type: 'button', class: 'ghost close', 'aria-label': 'Close span detail', onclick: () => { detail.hidden = true; waterfall.focus(); } }, '✕')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Service'), h('dd', {}, h('i', { class: 'swatch', style: `background:${serviceColor(span.service)}` }), span.service),
      h('dt', {}, 'Kind'), h('dd', {}, kindLabel),
      h('dt', {}, 'Status'), h('dd', { class: statusCode === 'error' ? 'error' : '' }, statusCode, span.status.message ? ` — ${span.status.message}` : ''),
      h('dt', {}, 'Duration'), h('dd', {}, formatDuration(span.duration)),
      h('dt', {}, 'Start'), h('dd', {}, `+${formatDuration(span.start)} · ${formatTime(String(span.startNs))}`),
      h('dt', {}, 'Span ID'), h('dd', {}, h('code', {}, span.id)),
      span.parentId ? [h('dt', {}, 'Parent'), h('dd', {}, h('code', {}, span.parentId))] : null,
      critical.has(span.id) ? [h('dt', {}, 'Critical path'), h('dd', {}, 'yes')] : null),
    attributeTable('Span attributes', span.attributes),
    attributeTable('Resource attributes', span.resource),
    span.scope.name ? h('section', {}, h('h3', {}, 'Instrumentation scope'), h('p', {}, `${span.scope.name} ${span.scope.version || ''}`)) : null,
    span.events.length ? h('section', {}, h('h3', {}, `Events (${span.events.length})`), h('ol', { class: 'events' }, span.events.map((event) =>
      h('li', {}, h('strong', {}, event.name || '(event)'), ' ',
        h('span', { class: 'hint' }, `+${formatDuration(Number(BigInt(event.timeUnixNano || '0') - span.startNs) / 1e6)}`),
        attributeTable('', event.attributes || []))))) : null,
    span.links.length ? h('section', {}, h('h3', {}, `Links (${span.links.length})`), h('ul', {}, span.links.map((link) => {
      const linked = base64ToHex(link.traceId);
      return h('li', {}, h('a', { href: `/trace/${linked}` }, `trace ${linked}`), ` span ${base64ToHex(link.spanId)}`);
    }))) : null,
  ));
}

function select(span, { scroll = true, open = true } = {}) {
  selected = span;
  if (!span) return;
  // Expand the ancestors so the span is visible.
  let parent = byId.get(span.parentId);
  let changed = false;
  while (parent) {
    if (collapsed.delete(parent.id)) changed = true;
    parent = byId.get(parent.parentId);
  }
  if (changed) computeVisible();
  if (scroll) {
    const index = visible.indexOf(span);
    const top = index * ROW;
    if (top < waterfall.scrollTop || top > waterfall.scrollTop + waterfall.clientHeight - ROW * 2) {
      waterfall.scrollTop = Math.max(0, top - waterfall.clientHeight / 3);
    }
  }
  if (open) showDetail(span);
  renderRows();
  history.replaceState(null, '', `${location.pathname}?span=${span.id}${location.hash}`);
}

function toggle(span) {
  if (!span.children.length) return;
  if (collapsed.has(span.id)) collapsed.delete(span.id);
  else collapsed.add(span.id);
  computeVisible();
  renderRows();
}

waterfall.addEventListener('click', (event) => {
  const toggleButton = event.target.closest('[data-toggle]');
  if (toggleButton) {
    toggle(byId.get(toggleButton.dataset.toggle));
    return;
  }
  const row = event.target.closest('.row');
  if (row) select(byId.get(row.dataset.spanId), { scroll: false });
});

waterfall.addEventListener('keydown', (event) => {
  if (!visible.length) return;
  let index = selected ? visible.indexOf(selected) : -1;
  switch (event.key) {
    case 'ArrowDown': index = Math.min(visible.length - 1, index + 1); break;
    case 'ArrowUp': index = Math.max(0, index - 1); break;
    case 'Home': index = 0; break;
    case 'End': index = visible.length - 1; break;
    case 'ArrowRight':
      if (selected && collapsed.has(selected.id)) toggle(selected);
      event.preventDefault();
      return;
    case 'ArrowLeft':
      if (selected && selected.children.length && !collapsed.has(selected.id)) toggle(selected);
      else if (selected && byId.get(selected.parentId)) select(byId.get(selected.parentId), { open: false });
      event.preventDefault();
      return;
    case 'Enter':
    case ' ':
      if (selected) showDetail(selected);
      event.preventDefault();
      return;
    case 'Escape':
      detail.hidden = true;
      return;
    default:
      return;
  }
  event.preventDefault();
  select(visible[Math.max(0, index)], { open: !detail.hidden });
});

criticalToggle.addEventListener('change', () => renderRows());

// ---- find in trace ----------------------------------------------------------------------

/** What find-in-trace matches, built on first use (not while the trace first renders). */
function searchText(span) {
  span.searchText ??= `${span.name} ${span.service} ${span.id} ${span.attributes.map((kv) => `${kv.key}=${anyValue(kv.value)}`).join(' ')}`.toLowerCase();
  return span.searchText;
}

function find() {
  const needle = findInput.value.trim().toLowerCase();
  matches = needle ? spans.filter((span) => searchText(span).includes(needle)) : [];
  matches.sort((a, b) => a.start - b.start);
  matchIndex = -1;
  findCount.textContent = needle ? `${matches.length} match${matches.length === 1 ? '' : 'es'}` : '';
  renderRows();
  drawFlame();
}
findInput.addEventListener('input', find);
findInput.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && matches.length) {
    event.preventDefault();
    matchIndex = (matchIndex + (event.shiftKey ? matches.length - 1 : 1)) % matches.length;
    findCount.textContent = `${matchIndex + 1} of ${matches.length}`;
    select(matches[matchIndex]);
  }
});

// ---- tabs -------------------------------------------------------------------------------

const tabs = ['waterfall', 'flame', 'logs'];
let logsLoaded = false;
function openTab(name) {
  for (const tab of tabs) {
    const button = document.getElementById(`tab-${tab}`);
    const open = tab === name;
    button.setAttribute('aria-selected', String(open));
    button.tabIndex = open ? 0 : -1;
    document.getElementById(`panel-${tab}`).hidden = !open;
  }
  if (name === 'flame') drawFlame();
  if (name === 'logs' && !logsLoaded) loadLogs();
  if (name === 'waterfall') schedule();
  history.replaceState(null, '', `${location.pathname}${location.search}${name === 'waterfall' ? '' : `#${name}`}`);
}
for (const tab of tabs) {
  const button = document.getElementById(`tab-${tab}`);
  button.addEventListener('click', () => openTab(tab));
  button.addEventListener('keydown', (event) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
    openTab(next);
    document.getElementById(`tab-${next}`).focus();
  });
}

// ---- flame graph ------------------------------------------------------------------------

const flame = document.getElementById('flame');
let flameBoxes = [];
function drawFlame() {
  if (document.getElementById('panel-flame').hidden || !spans.length) return;
  const maxDepth = Math.min(spans.reduce((max, span) => Math.max(max, span.depth), 0), 200);
  const width = flame.clientWidth || 800;
  const frame = 18;
  const height = (maxDepth + 1) * frame + 4;
  const ratio = window.devicePixelRatio || 1;
  flame.width = width * ratio;
  flame.height = height * ratio;
  flame.style.height = `${height}px`;
  const context = flame.getContext('2d');
  context.scale(ratio, ratio);
  context.font = '11px system-ui, sans-serif';
  context.textBaseline = 'middle';
  const text = themeColor('--fg') || '#111';
  const matchSet = new Set(matches.map((span) => span.id));
  flameBoxes = [];
  for (const span of spans) {
    if (span.depth > maxDepth) continue;
    const x = (span.start / traceEnd) * width;
    const w = Math.max((span.duration / traceEnd) * width, 1);
    const y = span.depth * frame;
    context.fillStyle = serviceColor(span.service);
    context.globalAlpha = matches.length && !matchSet.has(span.id) ? 0.3 : 1;
    context.fillRect(x, y, w - 0.5, frame - 1);
    if (span.error) {
      context.strokeStyle = '#d33';
      context.lineWidth = 2;
      context.strokeRect(x + 1, y + 1, w - 2.5, frame - 3);
    }
    if (w > 40) {
      context.fillStyle = text;
      context.fillText(span.name, x + 3, y + frame / 2, w - 6);
    }
    flameBoxes.push([x, y, w, frame, span]);
  }
  context.globalAlpha = 1;
}
flame.addEventListener('click', (event) => {
  const rect = flame.getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  const hit = flameBoxes.find(([bx, by, bw, bh]) => x >= bx && x <= bx + bw && y >= by && y <= by + bh);
  if (hit) select(hit[4], { scroll: false });
});
window.addEventListener('resize', () => drawFlame());
window.addEventListener('themechange', () => drawFlame());

// ---- logs -------------------------------------------------------------------------------

async function loadLogs() {
  logsLoaded = true;
  const container = document.getElementById('logs');
  try {
    const answer = await getJSON('/api/logs', { traceID: traceId });
    const logs = answer.logs || [];
    if (!logs.length) {
      container.replaceChildren(h('p', { class: 'empty' }, 'No logs were received for this trace.'));
      return;
    }
    container.replaceChildren(h('table', { class: 'grid logs-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Time'), h('th', {}, 'Severity'), h('th', {}, 'Service'), h('th', {}, 'Message'), h('th', {}, 'Span'))),
      h('tbody', {}, logs.map((log) => h('tr', { class: `sev-${(log.severityText || '').toLowerCase()}` },
        h('td', {}, formatTime(log.timeUnixNano)),
        h('td', {}, log.severityText || String(log.severityNumber || '')),
        h('td', {}, log.serviceName || ''),
        h('td', { class: 'body' }, log.body || '', Object.keys(log.attributes || {}).length
          ? h('small', {}, Object.entries(log.attributes).map(([key, value]) => `${key}=${value}`).join(' '))
          : null),
        h('td', {}, log.spanId && byId.has(log.spanId)
          ? h('button', { type: 'button', class: 'link', onclick: () => { openTab('waterfall'); select(byId.get(log.spanId)); } }, byId.get(log.spanId).name)
          : (log.spanId || ''))))),
    ));
  } catch (error) {
    container.replaceChildren(h('p', { class: 'error' }, describeError(error, 'logs')));
  }
}

// ---- load -------------------------------------------------------------------------------

/** "Open in Grafana Explore" when ui.grafana_url is configured: the trace in the Tempo datasource. */
function grafanaLink(rootSpan) {
  const grafana = document.body.dataset.grafanaUrl;
  if (!grafana) return '';
  const uid = document.body.dataset.grafanaDatasource || 'tempo';
  const startMs = rootSpan ? Number(rootSpan.startNs / 1000000n) : Date.now();
  const panes = { a: {
    datasource: uid,
    queries: [{ refId: 'A', datasource: { type: 'tempo', uid }, queryType: 'traceql', query: traceId }],
    range: { from: String(startMs - 300000), to: String(startMs + Math.ceil(traceEnd) + 300000) },
  } };
  const url = `${grafana}/explore?schemaVersion=1&orgId=1&panes=${encodeURIComponent(JSON.stringify(panes))}`;
  return [' · ', h('a', { href: url, class: 'grafana-link', rel: 'noreferrer' }, 'Open in Grafana Explore')];
}

async function load() {
  const fetchStart = performance.now();
  let answer;
  try {
    answer = await getJSON(`/api/v2/traces/${traceId}`);
  } catch (error) {
    summary.textContent = error.status === 404 ? `Trace ${traceId} was not found.` : describeError(error, 'the trace');
    summary.className = 'summary error';
    waterfall.replaceChildren(h('p', { class: 'empty' }, 'Nothing to show.'));
    return;
  }
  const parseStart = performance.now();
  spans = parse(answer);
  roots = buildTree();
  critical = criticalPath(roots);
  computeVisible();
  renderAxis();
  const rootSpan = roots[0];
  const services = new Set(spans.map((span) => span.service));
  const errors = spans.filter((span) => span.error).length;
  summary.replaceChildren(
    rootSpan ? h('strong', {}, `${rootSpan.service}: ${rootSpan.name}`) : '',
    ` · ${formatDuration(traceEnd)} · ${spans.length} spans · ${services.size} services`,
    errors ? h('span', { class: 'error' }, ` · ${errors} errors`) : '',
    rootSpan ? ` · ${formatTime(String(rootSpan.startNs))}` : '');
  document.getElementById('outlinks').replaceChildren(h('span', {},
    h('a', { href: `/api/v2/traces/${traceId}` }, 'Trace JSON'),
    rootSpan ? [' · ', h('a', { href: `/services/${encodeURIComponent(rootSpan.service)}` }, `${rootSpan.service} service`)] : '',
    grafanaLink(rootSpan)));
  const wanted = new URLSearchParams(location.search).get('span');
  renderRows();
  performance.mark('trace-first-render');
  window.__vivaceTiming = {
    spans: spans.length,
    fetchMs: parseStart - fetchStart,
    renderMs: performance.now() - parseStart,
    firstRenderMs: performance.now(),
  };
  root.dataset.ready = 'true';
  if (wanted && byId.has(wanted)) select(byId.get(wanted));
  if (location.hash === '#logs') openTab('logs');
  if (location.hash === '#flame') openTab('flame');
}

load();
