// Search page: TraceQL editor with autocompletion from the tags API, time range, sortable
// result table. The URL always holds the query and range, so every view can be shared.
import { getJSON, h, formatDuration, formatTime, describeError, nowSeconds } from './common.js';

const form = document.getElementById('search-form');
const editor = document.getElementById('query');
const suggest = document.getElementById('suggest');
const range = document.getElementById('range');
const startInput = document.getElementById('start');
const endInput = document.getElementById('end');
const limitInput = document.getElementById('limit');
const status = document.getElementById('status');
const tbody = document.querySelector('#results tbody');

const INTRINSICS = ['name', 'status', 'kind', 'duration', 'statusMessage', 'rootName', 'rootServiceName', 'traceDuration', 'span:id', 'trace:id', 'event:name', 'link:traceID', 'instrumentation:name'];
const KEYWORD_VALUES = {
  status: ['error', 'ok', 'unset'],
  kind: ['server', 'client', 'producer', 'consumer', 'internal', 'unspecified'],
};

let rows = [];
let sortKey = 'start';
let sortDescending = true;
let tagNames = null;

// ---- time range -------------------------------------------------------------------------

function toLocalInput(seconds) {
  const date = new Date(seconds * 1000);
  const offset = date.getTimezoneOffset() * 60000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 19);
}
function fromLocalInput(text) {
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}
function currentRange() {
  if (range.value === 'custom') {
    const start = fromLocalInput(startInput.value);
    const end = fromLocalInput(endInput.value);
    return { start, end };
  }
  const end = nowSeconds();
  return { start: end - Number(range.value), end };
}
function syncCustom() {
  const custom = range.value === 'custom';
  for (const element of document.querySelectorAll('.custom')) element.classList.toggle('shown', custom);
  if (custom && !startInput.value) {
    const end = nowSeconds();
    startInput.value = toLocalInput(end - 3600);
    endInput.value = toLocalInput(end);
  }
}
range.addEventListener('change', syncCustom);

// ---- autocompletion ---------------------------------------------------------------------

async function loadTags() {
  if (tagNames) return tagNames;
  try {
    const answer = await getJSON('/api/v2/search/tags');
    const names = [];
    for (const scope of answer.scopes || []) {
      for (const tag of scope.tags || []) {
        names.push(scope.name === 'intrinsic' ? tag : `${scope.name}.${tag}`);
      }
    }
    tagNames = [...new Set(['resource.', 'span.', 'event.', 'link.', '.', ...INTRINSICS, ...names])];
  } catch {
    tagNames = ['resource.', 'span.', ...INTRINSICS];
  }
  return tagNames;
}

let active = -1;
let items = [];
let replaceFrom = 0;

function closeSuggest() {
  suggest.hidden = true;
  items = [];
  active = -1;
  editor.removeAttribute('aria-activedescendant');
}

function renderSuggest() {
  if (!items.length) return closeSuggest();
  suggest.replaceChildren(...items.map((item, index) => h('li', {
    id: `suggest-${index}`, role: 'option', 'aria-selected': index === active ? 'true' : 'false',
    onmousedown: (event) => { event.preventDefault(); pick(index); },
  }, item.label, item.detail ? h('small', {}, item.detail) : null)));
  suggest.hidden = false;
  if (active >= 0) editor.setAttribute('aria-activedescendant', `suggest-${active}`);
}

function pick(index) {
  const item = items[index];
  if (!item) return;
  const cursor = editor.selectionStart;
  const text = editor.value;
  editor.value = text.slice(0, replaceFrom) + item.insert + text.slice(cursor);
  const position = replaceFrom + item.insert.length;
  editor.setSelectionRange(position, position);
  closeSuggest();
  editor.focus();
  if (item.insert.endsWith('.')) complete();
}

let completeSeq = 0;
async function complete() {
  const seq = ++completeSeq;
  const before = editor.value.slice(0, editor.selectionStart);
  const valueMatch = before.match(/([A-Za-z0-9_.:]+)\s*(=|!=|=~|!~)\s*("?)([^"\s&|}]*)$/);
  if (valueMatch) {
    const [, attribute, , quoteMark, prefix] = valueMatch;
    replaceFrom = before.length - prefix.length - quoteMark.length;
    let values = [];
    if (KEYWORD_VALUES[attribute]) {
      values = KEYWORD_VALUES[attribute].map((value) => ({ label: value, insert: value }));
    } else {
      try {
        const answer = await getJSON(`/api/v2/search/tag/${encodeURIComponent(attribute)}/values`);
        values = (answer.tagValues || []).map((value) => {
          const quoted = value.type === 'string' || value.type === undefined;
          return { label: value.value, detail: value.type, insert: quoted ? `"${value.value}"` : value.value };
        });
      } catch {
        values = [];
      }
    }
    if (seq !== completeSeq) return;
    items = values.filter((item) => item.label.toLowerCase().startsWith(prefix.toLowerCase())).slice(0, 12);
    active = items.length ? 0 : -1;
    return renderSuggest();
  }
  const nameMatch = before.match(/(?:^|[{(&|!\s])([A-Za-z0-9_.:]*)$/);
  const inside = (before.match(/{/g) || []).length > (before.match(/}/g) || []).length;
  if (nameMatch && inside) {
    const prefix = nameMatch[1];
    replaceFrom = before.length - prefix.length;
    const names = await loadTags();
    if (seq !== completeSeq) return;
    items = names
      .filter((name) => name.startsWith(prefix) && name !== prefix)
      .slice(0, 12)
      .map((name) => ({ label: name, insert: name.endsWith('.') ? name : `${name} ` }));
    active = items.length ? 0 : -1;
    return renderSuggest();
  }
  closeSuggest();
}

editor.addEventListener('input', () => complete());
editor.addEventListener('blur', () => setTimeout(closeSuggest, 100));
editor.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    closeSuggest();
    form.requestSubmit();
    return;
  }
  if (event.key === 'Enter' && !suggest.hidden && active >= 0) {
    event.preventDefault();
    pick(active);
    return;
  }
  if (event.key === 'Enter' && suggest.hidden) {
    event.preventDefault();
    form.requestSubmit();
    return;
  }
  if (suggest.hidden) {
    if (event.key === 'ArrowDown' && event.altKey) complete();
    return;
  }
  if (event.key === 'ArrowDown' || (event.key === 'Tab' && !event.shiftKey)) {
    event.preventDefault();
    active = (active + 1) % items.length;
    if (event.key === 'Tab' && items.length === 1) return pick(0);
    renderSuggest();
  } else if (event.key === 'ArrowUp') {
    event.preventDefault();
    active = (active - 1 + items.length) % items.length;
    renderSuggest();
  } else if (event.key === 'Escape') {
    closeSuggest();
  }
});

// ---- results ----------------------------------------------------------------------------

function matchedSpans(trace) {
  const sets = trace.spanSets || (trace.spanSet ? [trace.spanSet] : []);
  return sets.reduce((sum, set) => sum + (set.matched || (set.spans || []).length), 0);
}

function renderRows() {
  const sorted = [...rows].sort((a, b) => {
    const left = a[sortKey];
    const right = b[sortKey];
    const order = typeof left === 'string' ? left.localeCompare(right) : left - right;
    return sortDescending ? -order : order;
  });
  for (const button of document.querySelectorAll('#results th button')) {
    const th = button.parentElement;
    th.setAttribute('aria-sort', button.dataset.sort === sortKey ? (sortDescending ? 'descending' : 'ascending') : 'none');
  }
  tbody.replaceChildren(...sorted.map((row) => h('tr', { dataset: { traceId: row.traceID } },
    h('td', {}, row.rootServiceName || '<root span not yet received>'),
    h('td', {}, h('a', { href: `/trace/${row.traceID}`, class: 'trace-link' }, row.rootTraceName || row.traceID)),
    h('td', {}, formatTime(row.startTimeUnixNano)),
    h('td', { class: 'num' }, formatDuration(row.durationMs)),
    h('td', { class: 'num' }, row.matched),
  )));
}

document.querySelector('#results thead').addEventListener('click', (event) => {
  const button = event.target.closest('button[data-sort]');
  if (!button) return;
  if (sortKey === button.dataset.sort) sortDescending = !sortDescending;
  else {
    sortKey = button.dataset.sort;
    sortDescending = sortKey !== 'rootServiceName' && sortKey !== 'rootTraceName';
  }
  renderRows();
});

// A row anywhere clicked opens its trace (the link in it is the keyboard path).
tbody.addEventListener('click', (event) => {
  const row = event.target.closest('tr[data-trace-id]');
  if (row && !event.target.closest('a')) location.href = `/trace/${row.dataset.traceId}`;
});

// Only the latest search may fill the table: an earlier, slower one must not overwrite it.
let searches = 0;

async function run({ push }) {
  const generation = ++searches;
  const query = editor.value.trim() || '{}';
  const { start, end } = currentRange();
  const limit = limitInput.value || 50;
  const params = new URLSearchParams({ q: query });
  if (range.value === 'custom') {
    if (start) params.set('start', start);
    if (end) params.set('end', end);
  } else {
    params.set('range', range.value);
  }
  if (limit !== '50') params.set('limit', limit);
  const url = `/search?${params}`;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
  status.textContent = 'Searching…';
  status.className = 'status';
  const started = performance.now();
  try {
    const answer = await getJSON('/api/search', { q: query, start, end, limit, spss: 10 });
    if (generation !== searches) return;
    rows = (answer.traces || []).map((trace) => ({
      ...trace,
      start: Number(BigInt(trace.startTimeUnixNano || '0') / 1000000n),
      durationMs: trace.durationMs || 0,
      matched: matchedSpans(trace),
    }));
    renderRows();
    const took = Math.round(performance.now() - started);
    status.textContent = rows.length ? `${rows.length} traces in ${took} ms` : 'No traces match this query in this range.';
  } catch (error) {
    if (generation !== searches) return;
    rows = [];
    renderRows();
    status.textContent = describeError(error, 'search results');
    status.className = 'status error';
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  closeSuggest();
  run({ push: true });
});

function restoreFromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.has('q')) editor.value = params.get('q');
  if (params.has('limit')) limitInput.value = params.get('limit');
  if (params.has('start') || params.has('end')) {
    range.value = 'custom';
    if (params.get('start')) startInput.value = toLocalInput(Number(params.get('start')));
    if (params.get('end')) endInput.value = toLocalInput(Number(params.get('end')));
  } else if (params.has('range') && [...range.options].some((option) => option.value === params.get('range'))) {
    range.value = params.get('range');
  }
  syncCustom();
}

window.addEventListener('popstate', () => {
  restoreFromUrl();
  run({ push: false });
});

restoreFromUrl();
run({ push: false });
