// Alerts: what Alertmanager sent to vivace's webhook, newest first, each with the traces
// behind it (exemplars of the alert's series, failing or slow traces of its service).
import { getJSON, h, formatDuration, formatTime, describeError } from './common.js';

const root = document.getElementById('alerts');
const fingerprint = root.dataset.fingerprint;
const list = document.getElementById('list');
const status = document.getElementById('status');

function when(text) {
  if (!text || text.startsWith('0001-')) return null;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString(undefined, { hour12: false });
}

function alertCard(alert, full) {
  const labels = alert.labels || {};
  const annotations = alert.annotations || {};
  const traces = alert.traces || [];
  const title = labels.alertname || alert.fingerprint;
  return h('article', { class: `alert ${alert.status}`, dataset: { fingerprint: alert.fingerprint } },
    h('header', {},
      h('span', { class: `pill ${alert.status}` }, alert.status),
      full ? h('h2', {}, title) : h('h2', {}, h('a', { href: `/alerts/${encodeURIComponent(alert.fingerprint)}` }, title)),
      labels.severity ? h('span', { class: 'pill' }, labels.severity) : null,
      h('span', { class: 'hint' }, `since ${when(alert.startsAt) || '?'}`, when(alert.endsAt) ? ` · ended ${when(alert.endsAt)}` : '')),
    annotations.summary ? h('p', {}, annotations.summary) : null,
    full && annotations.description ? h('p', { class: 'hint' }, annotations.description) : null,
    h('p', { class: 'labels' }, Object.entries(labels).map(([key, value]) => h('code', {}, `${key}=${value}`))),
    full && alert.generatorURL ? h('p', {}, h('a', { href: alert.generatorURL, rel: 'noreferrer' }, 'Rule source')) : null,
    labels.service ? h('p', {}, h('a', { href: `/services/${encodeURIComponent(labels.service)}` }, `${labels.service} service page`)) : null,
    traces.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Trace'), h('th', {}, 'Why'), h('th', {}, 'Root'), h('th', {}, 'Start'), h('th', { class: 'num' }, 'Duration'))),
        h('tbody', {}, (full ? traces : traces.slice(0, 5)).map((trace) => h('tr', {},
          h('td', {}, h('a', { href: `/trace/${trace.traceId}` }, h('code', {}, trace.traceId.slice(0, 16)))),
          h('td', {}, trace.reason || ''),
          h('td', {}, `${trace.rootServiceName || ''} ${trace.rootTraceName || ''}`),
          h('td', {}, trace.startTimeUnixNano ? formatTime(trace.startTimeUnixNano) : ''),
          h('td', { class: 'num' }, formatDuration(trace.durationMs)))))))
      : h('p', { class: 'empty' }, 'No traces were found behind this alert.'));
}

async function load() {
  try {
    if (fingerprint) {
      const alert = await getJSON(`/api/alerts/${encodeURIComponent(fingerprint)}`);
      list.replaceChildren(alertCard(alert, true));
      status.textContent = '';
      return;
    }
    const answer = await getJSON('/api/alerts');
    const alerts = answer.alerts || [];
    list.replaceChildren(...alerts.map((alert) => alertCard(alert, false)));
    const firing = alerts.filter((alert) => alert.status === 'firing').length;
    status.textContent = alerts.length
      ? `${alerts.length} alerts, ${firing} firing`
      : 'No alerts received. Point an Alertmanager webhook receiver at /api/alerts/webhook.';
  } catch (error) {
    if (fingerprint && error.status === 404) {
      status.textContent = `No alert with fingerprint ${fingerprint}.`;
    } else {
      status.textContent = describeError(error, 'alerts');
    }
    status.className = 'status error';
    list.replaceChildren();
  }
}

load();
setInterval(() => { if (!fingerprint && document.visibilityState === 'visible') load(); }, 30000);
