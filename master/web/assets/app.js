// acrida's dashboard (docs/dashboard.md): polls the master's API every 2 s and renders it. Plain
// JavaScript, no framework and no network beyond the master. Every URL is relative, so the page
// works behind a path prefix. Every string from the API reaches the page through textContent or
// setAttribute, never as HTML.

const POLL_MS = 2000;
const MAX_LOCAL_SAMPLES = 4096;
const RUNNING = new Set(['spawning', 'running']);

const $ = (id) => document.getElementById(id);

// ---- formatting -------------------------------------------------------------------------------

const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

function fmtInt(v) {
  return isNum(v) ? nf0.format(v) : '–';
}

// Milliseconds: sub-millisecond times keep two decimals, short ones one, the rest none.
function fmtMs(v) {
  if (!isNum(v)) return '–';
  if (v !== 0 && Math.abs(v) < 1) return nf2.format(v);
  if (Math.abs(v) < 100) return nf1.format(v);
  return nf0.format(v);
}

function fmtRate(v) {
  if (!isNum(v)) return '–';
  return v !== 0 && Math.abs(v) < 1 ? nf2.format(v) : nf1.format(v);
}

function fmtPct(v) {
  if (!isNum(v)) return '–';
  return v !== 0 && Math.abs(v) < 1 ? nf2.format(v) : nf1.format(v);
}

function fmtDuration(s) {
  if (!isNum(s) || s < 0) return '–';
  s = Math.floor(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h ${m}m ${sec}s`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

// The API escapes failure and exception texts as HTML (as Locust does); the page shows them as
// text, so the five entities are turned back into characters before they reach textContent.
const ENTITIES = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#x27;': "'", '&#39;': "'" };
function unescapeHtml(s) {
  return String(s ?? '').replace(/&(amp|lt|gt|quot|#x27|#39);/g, (e) => ENTITIES[e]);
}

// ---- DOM helpers ------------------------------------------------------------------------------

// A new element; @cls a class string or '', @text its text content (never parsed as HTML).
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function row(cells, cls) {
  const tr = el('tr', cls || '');
  for (const c of cells) {
    if (c instanceof Node) {
      const td = el('td', '');
      td.append(c);
      tr.append(td);
    } else {
      tr.append(el('td', c.cls || '', c.text));
    }
  }
  return tr;
}

const num = (text) => ({ text, cls: 'num' });
const txt = (text) => ({ text: text ?? '', cls: 'text' });

function fillBody(table, rows, emptyId) {
  const tbody = table.tBodies[0];
  tbody.replaceChildren(...rows);
  table.hidden = rows.length === 0;
  if (emptyId) $(emptyId).hidden = rows.length !== 0;
}

function setCount(id, n) {
  $(id).textContent = n ? `(${nf0.format(n)})` : '';
}

// ---- HTTP -------------------------------------------------------------------------------------

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

// POSTs a form; returns {success, message} from the JSON answer, or a failure naming the status.
async function postForm(url, fields) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) body.append(k, v);
  let r;
  try {
    r = await fetch(url, { method: 'POST', body, cache: 'no-store' });
  } catch (e) {
    return { success: false, message: `cannot reach the master: ${e.message}` };
  }
  let doc = null;
  try {
    doc = await r.json();
  } catch (e) {
    doc = null;
  }
  if (doc && typeof doc === 'object' && 'success' in doc) return doc;
  return { success: r.ok, message: r.ok ? '' : `HTTP ${r.status} ${r.statusText}` };
}

// ---- state ------------------------------------------------------------------------------------

const app = {
  stats: null,           // the last /stats/requests document
  exceptions: [],
  tab: 'stats',
  sort: null,            // {key, dir} of the statistics table, null = the API's order
  testId: undefined,
  localSamples: [],      // chart samples taken from the polls, when /stats/history is unavailable
  history: null,         // the last /stats/history array (null = not fetched or unavailable)
  historyOk: true,
  charts: null,
  autoOpened: false,
  polling: false,
};

// ---- header and buttons -----------------------------------------------------------------------

// The scenario's load shape drives the test: its current target (acrida's "shape" field).
function renderShape(shape) {
  let cell = $('hdr-shape');
  if (!cell) {
    const box = document.createElement('div');
    const dt = document.createElement('dt');
    dt.textContent = 'Shape';
    cell = document.createElement('dd');
    cell.id = 'hdr-shape';
    cell.dataset.testid = 'hdr-shape';
    box.append(dt, cell);
    box.hidden = true;
    $('hdr-runtime').parentElement.after(box);
  }
  const on = shape && isNum(shape.users);
  cell.parentElement.hidden = !on;
  if (!on) return;
  const stage = isNum(shape.stage) ? `, stage ${shape.stage}` : '';
  cell.textContent = `shape: ${fmtInt(shape.users)} users${stage}`;
  cell.title = `${fmtRate(shape.spawn_rate)} users/s`;
}

function renderHeader(s) {
  const state = s.state || 'unknown';
  const st = $('hdr-state');
  st.textContent = state;
  st.dataset.state = state;
  $('hdr-users').textContent = fmtInt(s.user_count);
  $('hdr-rps').textContent = `${fmtRate(s.total_rps)} req/s`;
  $('hdr-fail').textContent = `${fmtPct(isNum(s.fail_ratio) ? s.fail_ratio * 100 : null)} %`;
  const workers = Array.isArray(s.workers) ? s.workers : [];
  $('hdr-workers').textContent = fmtInt(workers.length);
  $('hdr-runtime').textContent = fmtDuration(s.run_time);
  renderShape(s.shape);

  const running = RUNNING.has(state);
  $('btn-new').hidden = running || state === 'stopping';
  $('btn-edit').hidden = !running;
  $('btn-stop').hidden = !(running || state === 'stopping');
  $('btn-stop').disabled = state === 'stopping';
}

// ---- statistics -------------------------------------------------------------------------------

function pct(rowData, key, fallback) {
  const p = rowData.response_time_percentiles;
  if (p && isNum(p[key])) return p[key];
  return isNum(rowData[fallback]) ? rowData[fallback] : null;
}

function sortValue(r, key) {
  if (key === 'p95') return pct(r, '95', null);
  if (key === 'p99') return pct(r, '99', 'ninety_ninth_response_time');
  return r[key];
}

function isAggregated(r) {
  return r.name === 'Aggregated' && (r.method === null || r.method === undefined || r.method === '');
}

function renderStats(s) {
  const all = Array.isArray(s.stats) ? s.stats : [];
  let entries = all.filter((r) => !isAggregated(r));
  const total = all.filter(isAggregated);
  if (app.sort) {
    const { key, dir } = app.sort;
    entries = entries.slice().sort((a, b) => {
      const x = sortValue(a, key);
      const y = sortValue(b, key);
      if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
      return String(x ?? '').localeCompare(String(y ?? '')) * dir;
    });
  }
  const rows = entries.concat(total).map((r) => {
    const tr = row([
      txt(r.method), txt(r.name),
      num(fmtInt(r.num_requests)), num(fmtInt(r.num_failures)),
      num(fmtMs(r.median_response_time)), num(fmtMs(pct(r, '95', null))),
      num(fmtMs(pct(r, '99', 'ninety_ninth_response_time'))), num(fmtMs(r.avg_response_time)),
      num(fmtMs(r.min_response_time)), num(fmtMs(r.max_response_time)),
      num(fmtInt(r.avg_content_length)), num(fmtRate(r.current_rps)),
      num(fmtRate(r.current_fail_per_sec)),
    ], isAggregated(r) ? 'total' : '');
    tr.dataset.testid = isAggregated(r) ? 'stats-total' : 'stats-row';
    tr.dataset.requests = String(r.num_requests ?? 0);
    tr.dataset.failures = String(r.num_failures ?? 0);
    tr.setAttribute('data-name', String(r.name ?? ''));
    if ((r.num_failures ?? 0) > 0) tr.cells[3].classList.add('bad');
    return tr;
  });
  const hasRequests = all.some((r) => (r.num_requests ?? 0) > 0);
  fillBody($('stats-table'), rows, null);
  $('stats-table').hidden = false;
  $('stats-empty').hidden = hasRequests;
}

function setupSorting() {
  const heads = $('stats-table').tHead.rows[0].cells;
  for (const th of heads) {
    th.tabIndex = 0;
    th.setAttribute('aria-sort', 'none');
    const act = () => {
      const key = th.dataset.key;
      const dir = app.sort && app.sort.key === key ? -app.sort.dir : (th.classList.contains('text') ? 1 : -1);
      app.sort = { key, dir };
      for (const h of heads) h.setAttribute('aria-sort', 'none');
      th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
      if (app.stats) renderStats(app.stats);
    };
    th.addEventListener('click', act);
    th.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        act();
      }
    });
  }
}

// ---- failures, exceptions, workers, ratios ----------------------------------------------------

function renderFailures(s) {
  const errors = Array.isArray(s.errors) ? s.errors.slice() : [];
  errors.sort((a, b) => (b.occurrences ?? 0) - (a.occurrences ?? 0));
  const rows = errors.map((e) => {
    const tr = row([num(fmtInt(e.occurrences)), txt(e.method), txt(unescapeHtml(e.name)),
      txt(unescapeHtml(e.error))]);
    tr.dataset.testid = 'failure-row';
    return tr;
  });
  fillBody($('failures-table'), rows, 'failures-empty');
  setCount('count-failures', errors.length);
}

function renderExceptions() {
  const rows = app.exceptions.map((x) => {
    const pre = el('pre', 'traceback', unescapeHtml(x.traceback));
    const tr = row([num(fmtInt(x.count)), txt(unescapeHtml(x.msg)), pre, txt(x.nodes)]);
    tr.dataset.testid = 'exception-row';
    return tr;
  });
  fillBody($('exceptions-table'), rows, 'exceptions-empty');
  setCount('count-exceptions', app.exceptions.length);
}

function renderWorkers(s) {
  const workers = Array.isArray(s.workers) ? s.workers : [];
  const rows = workers.map((w) => {
    const cpu = isNum(w.cpu_usage) ? w.cpu_usage : null;
    const mem = isNum(w.memory_usage) ? w.memory_usage / 1e6 : null;
    const tr = row([
      txt(w.id), txt(w.host), txt(w.state), num(fmtInt(w.user_count)),
      num(cpu === null ? '–' : nf1.format(cpu)), num(mem === null ? '–' : nf1.format(mem)),
      num(isNum(w.last_heartbeat_age) ? nf1.format(w.last_heartbeat_age) : '–'),
    ], w.state === 'missing' ? 'missing' : '');
    tr.dataset.testid = 'worker-row';
    tr.dataset.state = String(w.state ?? '');
    if (cpu !== null && cpu >= 90) tr.cells[4].classList.add('bad');
    return tr;
  });
  fillBody($('workers-table'), rows, 'workers-empty');
  const missing = workers.filter((w) => w.state === 'missing').length;
  $('count-workers').textContent = workers.length
    ? `(${nf0.format(workers.length)}${missing ? `, ${nf0.format(missing)} missing` : ''})` : '';
  $('count-workers').classList.toggle('bad', missing > 0);
}

function renderRatios(doc) {
  const perClass = (doc && doc.per_class) || {};
  const total = (doc && doc.total) || {};
  const rows = [];
  for (const cls of Object.keys(perClass).sort()) {
    const c = perClass[cls] || {};
    const t = total[cls] || {};
    rows.push(row([txt(cls), num(fmtPct(100)), num(fmtPct(isNum(t.ratio) ? t.ratio * 100 : null))], 'class-row'));
    const tasks = c.tasks || {};
    for (const task of Object.keys(tasks)) {
      const tt = (t.tasks || {})[task] || {};
      const r = row([txt(task), num(fmtPct(isNum(tasks[task].ratio) ? tasks[task].ratio * 100 : null)),
        num(fmtPct(isNum(tt.ratio) ? tt.ratio * 100 : null))], 'task-row');
      rows.push(r);
    }
  }
  fillBody($('ratios-table'), rows, 'ratios-empty');
}

// ---- charts -----------------------------------------------------------------------------------

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function chartOpts(series, width, unit) {
  const axisColor = cssVar('--muted');
  const grid = cssVar('--grid');
  const axis = (extra) => Object.assign({ stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } }, extra);
  // Users are whole: a fractional tick of the users chart gets no label.
  const yLabel = (v) => {
    if (unit === 'users') return Number.isInteger(v) ? fmtInt(v) : '';
    return unit === 'ms' ? fmtMs(v) : fmtRate(v);
  };
  const fmt = (u, v) => (isNum(v) ? `${unit === 'ms' ? fmtMs(v) : unit === 'users' ? fmtInt(v) : fmtRate(v)} ${unit}` : '–');
  return {
    width,
    height: 220,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [{}].concat(series.map((s) => ({ label: s.label, stroke: cssVar(s.color), width: 2, value: fmt, spanGaps: false }))),
    axes: [axis({}), axis({ size: 64, values: (u, vals) => vals.map(yLabel) })],
    legend: { show: true },
    cursor: { drag: { x: true, y: false } },
  };
}

const CHARTS = [
  { id: 'chart-rps', unit: 'req/s', series: [{ key: 'rps', label: 'RPS', color: '--c1' }, { key: 'fail_per_sec', label: 'Failures/s', color: '--c-bad' }] },
  { id: 'chart-rt', unit: 'ms', series: [{ key: 'p50', label: 'Median (p50)', color: '--c1' }, { key: 'p95', label: '95%ile', color: '--c2' }, { key: 'p99', label: '99%ile', color: '--c3' }] },
  { id: 'chart-users', unit: 'users', series: [{ key: 'users', label: 'Users', color: '--c4' }] },
];

function chartData(samples, def) {
  const x = samples.map((s) => s.time);
  return [x].concat(def.series.map((sd) => samples.map((s) => (isNum(s[sd.key]) ? s[sd.key] : null))));
}

function chartWidth(id) {
  return Math.max(240, Math.floor($(id).getBoundingClientRect().width) || 600);
}

function destroyCharts() {
  if (!app.charts) return;
  for (const c of app.charts) c.destroy();
  app.charts = null;
}

function renderCharts() {
  if (app.tab !== 'charts' || typeof uPlot === 'undefined') return;
  const samples = app.history && app.historyOk ? app.history : app.localSamples;
  if (!app.charts) {
    app.charts = CHARTS.map((def) => {
      const target = $(def.id);
      target.replaceChildren();
      return new uPlot(chartOpts(def.series, chartWidth(def.id), def.unit), chartData(samples, def), target);
    });
    return;
  }
  CHARTS.forEach((def, i) => app.charts[i].setData(chartData(samples, def)));
}

function resizeCharts() {
  if (!app.charts) return;
  CHARTS.forEach((def, i) => app.charts[i].setSize({ width: chartWidth(def.id), height: 220 }));
}

function addLocalSample(s) {
  const total = (s.stats || []).find(isAggregated) || {};
  const state = s.state;
  if (!RUNNING.has(state) && state !== 'stopping') return;
  app.localSamples.push({
    time: Date.now() / 1000,
    rps: s.total_rps,
    fail_per_sec: total.current_fail_per_sec,
    p50: s.current_response_time_percentile_50,
    p95: s.current_response_time_percentile_95,
    p99: null,
    users: s.user_count,
  });
  if (app.localSamples.length > MAX_LOCAL_SAMPLES) app.localSamples.splice(0, MAX_LOCAL_SAMPLES / 2);
}

async function fetchHistory() {
  try {
    const h = await getJSON('./stats/history');
    app.history = Array.isArray(h) ? h : null;
    app.historyOk = app.history !== null;
  } catch (e) {
    app.historyOk = false;
  }
}

// ---- polling ----------------------------------------------------------------------------------

function showConnError(msg) {
  const b = $('conn-error');
  b.textContent = msg;
  b.hidden = !msg;
}

let noticeTimer = null;
function notice(msg, isError) {
  const n = $('notice');
  n.textContent = msg;
  n.classList.toggle('error', !!isError);
  n.hidden = !msg;
  clearTimeout(noticeTimer);
  if (msg && !isError) noticeTimer = setTimeout(() => { n.hidden = true; }, 5000);
}

async function poll() {
  if (app.polling) return;
  app.polling = true;
  try {
    const s = await getJSON('./stats/requests');
    showConnError('');
    if (s.test_id !== app.testId) {
      app.testId = s.test_id;
      app.localSamples = [];
      app.history = null;
    }
    app.stats = s;
    addLocalSample(s);
    renderHeader(s);
    renderStats(s);
    renderFailures(s);
    renderWorkers(s);
    if (!app.autoOpened) {
      // A master that never ran a test opens the start dialog, as Locust's page does.
      app.autoOpened = true;
      const fresh = s.state === 'ready' && !(s.stats || []).some((r) => (r.num_requests ?? 0) > 0);
      if (fresh) openSwarm(false);
    }
    const jobs = [getJSON('./exceptions').then((x) => {
      app.exceptions = Array.isArray(x && x.exceptions) ? x.exceptions : [];
      renderExceptions();
    }).catch(() => {})];
    if (app.tab === 'ratios') jobs.push(getJSON('./tasks').then(renderRatios).catch(() => {}));
    if (app.tab === 'charts') jobs.push(fetchHistory().then(renderCharts));
    await Promise.all(jobs);
  } catch (e) {
    showConnError(`Cannot read the master's statistics (${e.message}); retrying every ${POLL_MS / 1000} s.`);
  } finally {
    app.polling = false;
  }
}

// ---- tabs -------------------------------------------------------------------------------------

function selectTab(name) {
  app.tab = name;
  for (const b of document.querySelectorAll('[role=tab]')) {
    const on = b.dataset.tab === name;
    b.setAttribute('aria-selected', on ? 'true' : 'false');
    b.tabIndex = on ? 0 : -1;
    $(b.getAttribute('aria-controls')).hidden = !on;
  }
  if (history.replaceState) history.replaceState(null, '', `#${name}`);
  if (name === 'charts') fetchHistory().then(renderCharts);
  if (name === 'ratios') getJSON('./tasks').then(renderRatios).catch(() => renderRatios(null));
}

function setupTabs() {
  const tabs = Array.from(document.querySelectorAll('[role=tab]'));
  for (const b of tabs) {
    b.addEventListener('click', () => selectTab(b.dataset.tab));
    b.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(b);
      let j = null;
      if (e.key === 'ArrowRight') j = (i + 1) % tabs.length;
      if (e.key === 'ArrowLeft') j = (i + tabs.length - 1) % tabs.length;
      if (j !== null) {
        tabs[j].focus();
        selectTab(tabs[j].dataset.tab);
      }
    });
  }
  const wanted = location.hash.slice(1);
  selectTab(tabs.some((b) => b.dataset.tab === wanted) ? wanted : 'stats');
}

// ---- start / edit / stop / reset --------------------------------------------------------------

let swarmEdit = false;

function openSwarm(edit) {
  const d = $('swarm-dialog');
  if (d.open) return; // already open (the user's click raced the automatic opening): keep it as is
  swarmEdit = edit;
  d.classList.toggle('editing', edit);
  $('swarm-title').textContent = edit ? 'Change the running test' : 'Start a new test';
  $('swarm-submit').textContent = edit ? 'Update' : 'Start';
  for (const e of d.querySelectorAll('.start-only input')) e.disabled = edit;
  $('swarm-error').hidden = true;
  if (edit && app.stats && isNum(app.stats.user_count)) $('user_count').value = String(app.stats.user_count);
  d.showModal();
  $('user_count').focus();
}

async function submitSwarm(ev) {
  ev.preventDefault();
  const form = $('swarm-form');
  if (!form.reportValidity()) return;
  const fields = { user_count: $('user_count').value.trim(), spawn_rate: $('spawn_rate').value.trim() };
  if (!swarmEdit) {
    const host = $('host').value.trim();
    const runTime = $('run_time').value.trim();
    if (host) fields.host = host;
    if (runTime) fields.run_time = runTime;
  }
  const btn = $('swarm-submit');
  btn.disabled = true;
  try {
    const r = await postForm('./swarm', fields);
    if (!r.success) {
      const err = $('swarm-error');
      err.textContent = r.message || 'The master refused the request.';
      err.hidden = false;
      return;
    }
    $('swarm-dialog').close();
    notice(r.message || (swarmEdit ? 'User count changed' : 'Test started'), false);
    if (!swarmEdit) selectTab('stats');
    poll();
  } finally {
    btn.disabled = false;
  }
}

async function stopTest() {
  const r = await postForm('./stop', {});
  if (!r.success) notice(`Stop failed: ${r.message}`, true);
  poll();
}

async function resetStats() {
  try {
    const r = await fetch('./stats/reset', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    app.localSamples = [];
    notice('Statistics reset', false);
  } catch (e) {
    notice(`Reset failed: ${e.message}`, true);
  }
  poll();
}

function setupActions() {
  $('btn-new').addEventListener('click', () => openSwarm(false));
  $('btn-edit').addEventListener('click', () => openSwarm(true));
  $('btn-stop').addEventListener('click', stopTest);
  $('btn-reset').addEventListener('click', resetStats);
  $('swarm-form').addEventListener('submit', submitSwarm);
  $('swarm-cancel').addEventListener('click', () => $('swarm-dialog').close());
}

// ---- start ------------------------------------------------------------------------------------

function main() {
  setupTabs();
  setupSorting();
  setupActions();
  if (typeof ResizeObserver !== 'undefined') new ResizeObserver(resizeCharts).observe($('panel-charts'));
  // The charts take their colours from the theme: rebuilt when the colour scheme changes.
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    destroyCharts();
    renderCharts();
  });
  poll();
  setInterval(poll, POLL_MS);
}

main();
