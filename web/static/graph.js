// Service graph: nodes and edges from the metrics-generator's service-graph series (or from
// Prometheus' traces_service_graph_* when prometheus.url is set), drawn as layered SVG. An
// edge shows its rate, error rate and latency and links to its traces.
import { getJSON, h, s, serviceColor, formatRate, formatPercent, formatDuration, formatSpan, describeError, quote, usesPrometheus, nowSeconds } from './common.js';

const svg = document.getElementById('graph');
const status = document.getElementById('status');
const since = document.getElementById('since');
const panel = document.getElementById('edge');
const tbody = document.querySelector('#edges tbody');

async function fromPrometheus(seconds) {
  const window_ = `${seconds}s`;
  const by = 'client, server, connection_type';
  const query = (promql) => getJSON('/api/ui/prom/query', { query: promql, time: nowSeconds() })
    .then((answer) => (answer.data && answer.data.result) || []);
  const [requests, failed, p90] = await Promise.all([
    query(`sum by (${by}) (increase(traces_service_graph_request_total[${window_}]))`),
    query(`sum by (${by}) (increase(traces_service_graph_request_failed_total[${window_}]))`),
    query(`histogram_quantile(0.9, sum by (${by}, le) (rate(traces_service_graph_request_server_seconds_bucket[${window_}])))`),
  ]);
  const key = (metric) => `${metric.client}\u0000${metric.server}\u0000${metric.connection_type || ''}`;
  const failedBy = new Map(failed.map((one) => [key(one.metric), Number(one.value[1])]));
  const p90By = new Map(p90.map((one) => [key(one.metric), Number(one.value[1])]));
  const edges = requests.map((one) => {
    const total = Number(one.value[1]);
    const bad = failedBy.get(key(one.metric)) || 0;
    return {
      client: one.metric.client, server: one.metric.server, connectionType: one.metric.connection_type || '',
      requests: total, failed: bad, rate: total / seconds, errorRate: total ? bad / total : 0,
      p90Ms: p90By.has(key(one.metric)) ? p90By.get(key(one.metric)) * 1000 : null, traces: [],
    };
  });
  const kinds = { database: 'database', messaging_system: 'messaging', virtual_node: 'virtual' };
  const nodes = new Map();
  for (const edge of edges) {
    if (!nodes.has(edge.client)) nodes.set(edge.client, { name: edge.client, kind: 'service', requests: 0, failed: 0 });
    const node = nodes.get(edge.server) || { name: edge.server, kind: kinds[edge.connectionType] || 'service', requests: 0, failed: 0 };
    node.requests += edge.requests;
    node.failed += edge.failed;
    nodes.set(edge.server, node);
  }
  return { source: 'prometheus', windowSeconds: seconds, nodes: [...nodes.values()], edges };
}

/** Columns by longest path from the sources (cycles are cut), rows in order within a column. */
function layout(nodes, edges) {
  const rank = new Map(nodes.map((node) => [node.name, 0]));
  for (let pass = 0; pass < nodes.length; pass++) {
    let changed = false;
    for (const edge of edges) {
      if (edge.client === edge.server) continue;
      const next = rank.get(edge.client) + 1;
      if (next > rank.get(edge.server) && next < nodes.length) {
        rank.set(edge.server, next);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const columns = [];
  for (const node of nodes) (columns[rank.get(node.name)] ||= []).push(node);
  const width = Math.max(svg.clientWidth || 900, 320);
  const columnWidth = width / Math.max(columns.length, 1);
  const rowHeight = 74;
  const tallest = Math.max(...columns.map((column) => column?.length || 0), 1);
  const height = tallest * rowHeight + 30;
  const positions = new Map();
  columns.forEach((column, index) => {
    (column || []).forEach((node, row) => {
      const offset = (height - column.length * rowHeight) / 2;
      positions.set(node.name, { x: columnWidth * index + columnWidth / 2, y: offset + row * rowHeight + rowHeight / 2 });
    });
  });
  return { positions, width, height };
}

function edgeQuery(edge) {
  const client = `resource.service.name = ${quote(edge.client)} && (kind = client || kind = producer)`;
  if (edge.connectionType === 'database' || edge.connectionType === 'virtual_node') {
    const peer = ['span.peer.service', 'span.db.name', 'span.db.system', 'span.db.system.name'].map((key) => `${key} = ${quote(edge.server)}`).join(' || ');
    return `{ ${client} && (${peer}) }`;
  }
  return `{ ${client} } > { resource.service.name = ${quote(edge.server)} && (kind = server || kind = consumer) }`;
}

function showEdge(edge) {
  panel.hidden = false;
  const search = `/search?${new URLSearchParams({ q: edgeQuery(edge), range: String(Math.max(900, Number(since.value))) })}`;
  panel.replaceChildren(
    h('div', { class: 'detail-head' }, h('h2', {}, `${edge.client} → ${edge.server}`),
      h('button', { type: 'button', class: 'ghost close', 'aria-label': 'Close edge detail', onclick: () => { panel.hidden = true; } }, '✕')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Type'), h('dd', {}, edge.connectionType || 'call'),
      h('dt', {}, 'Requests'), h('dd', {}, `${Math.round(edge.requests)}${edge.rate !== null && edge.rate !== undefined ? ` · ${formatRate(edge.rate)}` : ''}`),
      h('dt', {}, 'Errors'), h('dd', { class: edge.failed ? 'error' : '' }, `${Math.round(edge.failed)} · ${formatPercent(edge.errorRate)}`),
      h('dt', {}, 'Latency'), h('dd', {}, `p50 ${formatDuration(edge.p50Ms)} · p90 ${formatDuration(edge.p90Ms)} · p99 ${formatDuration(edge.p99Ms)}`)),
    h('p', {}, h('a', { href: search, class: 'edge-search' }, 'Search this edge\'s traces')),
    edge.traces?.length ? h('section', {}, h('h3', {}, 'Exemplar traces'),
      h('ul', {}, edge.traces.map((id) => h('li', {}, h('a', { href: `/trace/${id}` }, h('code', {}, id)))))) : null);
}

function draw(graph) {
  const { nodes, edges } = graph;
  const { positions, width, height } = layout(nodes, edges);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const maxRequests = Math.max(...edges.map((edge) => edge.requests), 1);
  const defs = s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
    s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' })));
  const edgeLayer = s('g', {});
  const nodeLayer = s('g', {});
  // Boxes taken by nodes and by labels already placed, so edge labels neither overlap each
  // other nor sit on a node.
  const placed = nodes.filter((node) => positions.has(node.name)).map((node) => {
    const at = positions.get(node.name);
    return { left: at.x - 62, right: at.x + 62, top: at.y - 22, bottom: at.y + 22 };
  });
  edges.forEach((edge, index) => {
    const from = positions.get(edge.client);
    const to = positions.get(edge.server);
    if (!from || !to) return;
    const x1 = from.x + 60;
    const x2 = to.x - 62;
    const self = edge.client === edge.server;
    const d = self
      ? `M${from.x},${from.y - 18} c 40,-50 80,0 62,18`
      : `M${x1},${from.y} C${(x1 + x2) / 2},${from.y} ${(x1 + x2) / 2},${to.y} ${x2},${to.y}`;
    const widthPx = 1.5 + 5 * Math.sqrt(edge.requests / maxRequests);
    const label = `${edge.client} → ${edge.server}: ${edge.rate !== null && edge.rate !== undefined ? `${formatRate(edge.rate)}` : `${Math.round(edge.requests)} requests`}, ${formatPercent(edge.errorRate)} errors, p90 ${formatDuration(edge.p90Ms)}`;
    const group = s('g', {
      class: `edge${edge.errorRate > 0.01 ? ' failing' : ''}`, tabindex: 0, role: 'button', 'aria-label': label, 'data-edge': index,
      onclick: () => showEdge(edge), onkeydown: (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); showEdge(edge); } },
    },
    s('path', { d, class: 'edge-hit' }),
    s('path', { d, class: 'edge-line', 'stroke-width': widthPx.toFixed(1), 'marker-end': 'url(#arrow)' }),
    s('title', {}, label));
    if (!self) {
      const text = edge.rate !== null && edge.rate !== undefined ? formatRate(edge.rate) : `${Math.round(edge.requests)}`;
      // On the curve two thirds of the way to the server, then moved clear of labels placed before.
      const at = placeLabel(bezierPoint(x1, from.y, x2, to.y, 2 / 3), text, placed);
      group.append(s('text', { x: at.x, y: at.y, class: 'edge-label', 'text-anchor': 'middle' }, text));
    }
    edgeLayer.append(group);
  });
  for (const node of nodes) {
    const at = positions.get(node.name);
    const errorRate = node.requests ? node.failed / node.requests : 0;
    const shape = node.kind === 'database'
      ? s('path', { d: `M${at.x - 58},${at.y - 14} a58,8 0 0,0 116,0 v28 a58,8 0 0,1 -116,0 z`, class: 'node-box db' })
      : s('rect', { x: at.x - 60, y: at.y - 20, width: 120, height: 40, rx: node.kind === 'messaging' ? 2 : 10, class: `node-box ${node.kind}` });
    const link = node.kind === 'service' ? `/services/${encodeURIComponent(node.name)}` : null;
    const group = s(link ? 'a' : 'g', { class: 'node', href: link, 'data-node': node.name },
      shape,
      s('rect', { x: at.x - 60, y: at.y - 20, width: 6, height: 40, rx: 3, fill: serviceColor(node.name) }),
      s('text', { x: at.x + 3, y: at.y - 2, 'text-anchor': 'middle', class: 'node-name' }, node.name.length > 16 ? `${node.name.slice(0, 15)}…` : node.name),
      s('text', { x: at.x + 3, y: at.y + 13, 'text-anchor': 'middle', class: `node-stat${errorRate > 0.01 ? ' error' : ''}` },
        node.requests ? `${formatPercent(errorRate)} err` : node.kind),
      s('title', {}, `${node.name} (${node.kind})`));
    nodeLayer.append(group);
  }
  svg.replaceChildren(defs, edgeLayer, nodeLayer);
  tbody.replaceChildren(...edges.map((edge) => h('tr', {},
    h('td', {}, edge.client), h('td', {}, edge.server), h('td', {}, edge.connectionType || 'call'),
    h('td', { class: 'num' }, edge.rate !== null && edge.rate !== undefined ? formatRate(edge.rate) : `${Math.round(edge.requests)} in all`),
    h('td', { class: edge.errorRate > 0.01 ? 'num error' : 'num' }, formatPercent(edge.errorRate)),
    h('td', { class: 'num' }, formatDuration(edge.p90Ms)),
    h('td', {}, h('a', { href: `/search?${new URLSearchParams({ q: edgeQuery(edge) })}` }, 'search'),
      edge.traces?.length ? [' · ', h('a', { href: `/trace/${edge.traces[0]}` }, 'exemplar')] : null))));
}

/** The point at `t` (0..1) of the edge curve from (x1, y1) to (x2, y2), as drawn above. */
function bezierPoint(x1, y1, x2, y2, t) {
  const middle = (x1 + x2) / 2;
  const u = 1 - t;
  return {
    x: u * u * u * x1 + 3 * u * u * t * middle + 3 * u * t * t * middle + t * t * t * x2,
    y: u * u * u * y1 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y2,
  };
}

/** A label position near `at` whose box overlaps none in `placed` (which it then joins). */
function placeLabel(at, text, placed) {
  const width = text.length * 6.6 + 6;
  const height = 13;
  const box = (y) => ({ left: at.x - width / 2, right: at.x + width / 2, top: y - height + 2, bottom: y + 3 });
  const clear = (candidate) => placed.every((other) => candidate.right <= other.left || candidate.left >= other.right
    || candidate.bottom <= other.top || candidate.top >= other.bottom);
  for (let step = 0; step < 40; step++) {
    // 0, -1, +1, -2, +2, ... label heights away from the curve.
    const offset = (step % 2 ? -1 : 1) * Math.ceil(step / 2) * (height + 1);
    const y = at.y - 4 + offset;
    const candidate = box(y);
    if (clear(candidate)) {
      placed.push(candidate);
      return { x: at.x, y };
    }
  }
  placed.push(box(at.y - 4));
  return { x: at.x, y: at.y - 4 };
}

let lastGraph = null;
let loads = 0;

async function load() {
  const seconds = Number(since.value);
  const generation = ++loads;
  history.replaceState(null, '', `/graph?since=${seconds}`);
  // Keep a drawn graph in view while its update loads; say "Loading" only when there is none.
  if (!lastGraph) {
    status.textContent = 'Loading…';
    status.className = 'status';
  }
  svg.setAttribute('aria-busy', 'true');
  let text;
  let failed = false;
  try {
    const graph = usesPrometheus ? await fromPrometheus(seconds) : await getJSON('/api/ui/service-graph', { since: seconds });
    if (generation !== loads) return;
    lastGraph = graph;
    if (!graph.edges.length) {
      svg.replaceChildren();
      tbody.replaceChildren();
      text = 'No service-graph edges yet: they appear once client and server spans of a call have arrived.';
    } else {
      draw(graph);
      const window_ = graph.windowSeconds ? `last ${formatSpan(graph.windowSeconds)}` : 'since vivace started (rates appear after the next sample)';
      text = `${graph.nodes.length} nodes, ${graph.edges.length} edges · ${window_} · from ${graph.source}`;
    }
  } catch (error) {
    if (generation !== loads) return;
    text = describeError(error, 'the service graph');
    failed = true;
  }
  status.textContent = text;
  status.className = failed ? 'status error' : 'status';
  svg.removeAttribute('aria-busy');
}

const initial = new URLSearchParams(location.search).get('since');
if (initial && [...since.options].some((option) => option.value === initial)) since.value = initial;
since.addEventListener('change', load);
// A resize redraws what is shown; it does not fetch again.
let resizing = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => { if (lastGraph?.edges.length) draw(lastGraph); }, 100);
});
load();
