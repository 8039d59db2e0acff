// Tally's live dashboard: one WebSocket to /v1/stream (protocol: docs/stream.md), plain DOM, no build.
// Everything from the server is written with textContent: targets and types are user input.

const STREAM_PATH = '/v1/stream';
const STALE_AFTER_MS = 5_000; // the server sends a dashboard message about every 500 ms
const MAX_BACKOFF_MS = 15_000;
const LOCALE = undefined; // the browser's

const numberFormat = new Intl.NumberFormat(LOCALE);
const rateFormat = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 });
const timeFormat = new Intl.DateTimeFormat(LOCALE, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});
const motion = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;

const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`dashboard: #${id} is missing`);
  return element;
};

function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A stable colour class per type name. */
function hueClass(type) {
  let hash = 0;
  for (let i = 0; i < type.length; i++) hash = (hash * 31 + type.charCodeAt(i)) | 0;
  return `hue-${Math.abs(hash) % 8}`;
}

// ---- connection ----------------------------------------------------------------------------------

const connection = {
  socket: null,
  attempts: 0,
  lastMessageAt: 0,
  retryAt: 0,
  retryTimer: 0,
  live: null,
};

function connect() {
  clearTimeout(connection.retryTimer);
  connection.retryAt = 0;
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${window.location.host}${STREAM_PATH}`);
  connection.socket = socket;
  connection.lastMessageAt = Date.now();
  renderStatus();
  socket.addEventListener('open', () => {
    socket.send(JSON.stringify({ op: 'subscribe', channel: 'dashboard' }));
    // The dashboard's notifications, resumed after the last one seen: a reconnect misses none.
    const resume = alerts.lastSeq === null ? {} : { afterSeq: alerts.lastSeq };
    socket.send(
      JSON.stringify({ op: 'subscribe', channel: 'notifications', recipient: 'dashboard', ...resume }),
    );
  });
  socket.addEventListener('message', (event) => {
    if (connection.socket !== socket) return;
    connection.lastMessageAt = Date.now();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    onMessage(message);
  });
  socket.addEventListener('close', () => {
    if (connection.socket === socket) dropConnection();
  });
}

/** Forgets the socket and schedules a reconnect with exponential backoff and jitter. */
function dropConnection() {
  const socket = connection.socket;
  connection.socket = null;
  connection.live = null;
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close();
  const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** connection.attempts);
  const delay = Math.round(base * (0.75 + Math.random() * 0.5));
  connection.attempts++;
  connection.retryAt = Date.now() + delay;
  connection.retryTimer = setTimeout(connect, delay);
  renderStatus();
}

setInterval(() => {
  const socket = connection.socket;
  // A silent server or a dead network path (a handshake may take a little longer).
  const limit = socket?.readyState === WebSocket.OPEN ? STALE_AFTER_MS : 2 * STALE_AFTER_MS;
  if (socket && Date.now() - connection.lastMessageAt > limit) dropConnection();
  if (!connection.socket) renderStatus(); // countdown
}, 1_000);

window.addEventListener('online', () => {
  if (!connection.socket) connect();
});

function onMessage(message) {
  switch (message.channel) {
    case 'dashboard':
      connection.attempts = 0;
      connection.live = message.live ?? null;
      renderStatus();
      renderDashboard(message);
      break;
    case 'notification':
      addAlerts([message.notification]);
      break;
    case 'notifications':
      if (message.event === 'caughtUp') caughtUp(message.seq);
      break;
    case 'error':
      if (message.subscription === 'notifications') {
        alerts.unavailable = message.message;
        renderAlerts();
      } else console.warn('tally stream:', message.message);
      break;
    default:
      break; // hello, subscribed: nothing to show
  }
}

// ---- status ----------------------------------------------------------------------------------------

function renderStatus() {
  const status = $('status');
  const text = $('status-text');
  const notice = $('notice');
  let state = 'connecting';
  let label = 'Connecting…';
  let detail = '';
  const socket = connection.socket;
  if (!socket) {
    state = 'offline';
    const seconds = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
    label = seconds > 0 ? `Disconnected · retrying in ${seconds} s` : 'Disconnected · retrying…';
  } else if (socket.readyState === WebSocket.OPEN && connection.live) {
    const live = connection.live;
    if (live.state === 'live') {
      state = 'live';
      label = 'Live';
    } else if (live.state === 'starting') {
      label = 'Joining the event log…';
    } else {
      state = 'degraded';
      label = 'Live data unavailable';
      detail =
        live.state === 'off'
          ? 'Live data is unavailable: this gateway has no live feed configured. Leaderboards still update.'
          : `Live data is unavailable: ${live.reason ?? 'the event log cannot be reached'}. Retrying; leaderboards still update.`;
    }
  } else if (connection.attempts > 0) {
    label = 'Reconnecting…';
  }
  status.dataset.state = state;
  document.body.dataset.connection = state;
  text.textContent = label;
  notice.hidden = detail === '';
  notice.textContent = detail;
}

// ---- numbers ---------------------------------------------------------------------------------------

/** Shows `value` in `element`, counting up (or down) from the value shown before. */
function setNumber(element, value, format = numberFormat) {
  const previous = Number(element.dataset.value ?? Number.NaN);
  element.dataset.value = String(value);
  if (!motion || !Number.isFinite(previous) || previous === value) {
    element.textContent = format.format(value);
    return false;
  }
  const start = performance.now();
  const duration = 500;
  const step = (now) => {
    if (element.dataset.value !== String(value)) return; // a newer value took over
    const t = Math.min(1, (now - start) / duration);
    const eased = 1 - (1 - t) ** 3;
    const shown = t === 1 ? value : previous + (value - previous) * eased;
    element.textContent = format.format(Number.isInteger(value) ? Math.round(shown) : shown);
    if (t < 1) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
  return true;
}

function flash(element) {
  if (!motion) return;
  element.animate([{ backgroundColor: 'var(--flash)' }, { backgroundColor: 'transparent' }], {
    duration: 900,
    easing: 'ease-out',
  });
}

// ---- dashboard -------------------------------------------------------------------------------------

function renderDashboard(d) {
  // Without a live feed the gateway counts nothing itself: show no numbers rather than zeros.
  const feed = d.live?.state !== 'off';
  document.body.dataset.feed = feed ? 'on' : 'off';
  if (feed) {
    renderRate(d.rate, Date.parse(d.totals.since), Date.parse(d.at));
    renderTotals(d.totals);
  } else {
    for (const id of ['rate-value', 'total-value', 'types-value']) {
      $(id).textContent = '–';
      delete $(id).dataset.value;
    }
    $('rate-note').textContent = 'no live feed on this gateway';
    $('total-note').textContent = 'no live feed on this gateway';
  }
  $('latest-empty').textContent = feed
    ? 'Events appear here as they are ingested.'
    : 'No live feed on this gateway: the latest events are not shown.';
  renderBoards(d.top);
  renderLatest(d.latest);
}

function renderRate(rate, sinceMs, atMs) {
  const value = $('rate-value');
  const perSecond = rate.perSecond;
  value.dataset.value = String(perSecond);
  value.textContent = rateFormat.format(perSecond);
  const history = rate.history;
  const peak = Math.max(...history, 0);
  const averaged = `${Math.max(1, Math.round(rate.windowSeconds))} s average`;
  $('rate-note').textContent =
    peak > 0
      ? `${averaged} · peak ${numberFormat.format(peak)}/s in the last minute`
      : `${averaged} · last minute`;
  drawSparkline(history, sinceMs, atMs);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** One bar per second, the current (partial) second last; before the gateway started, a dashed line. */
function drawSparkline(history, sinceMs, atMs) {
  const width = 240;
  const height = 44;
  const slot = width / history.length;
  const top = Math.max(...history, 1);
  const group = $('spark-bars');
  if (group.children.length !== history.length) {
    group.replaceChildren(
      ...history.map(() => {
        const bar = document.createElementNS(SVG_NS, 'rect');
        bar.setAttribute('class', 'spark-bar');
        return bar;
      }),
    );
  }
  history.forEach((count, i) => {
    const bar = group.children[i];
    const barHeight = count > 0 ? Math.max(1.5, (count / top) * (height - 3)) : 0;
    bar.setAttribute('x', (i * slot + 0.4).toFixed(2));
    bar.setAttribute('width', (slot - 0.8).toFixed(2));
    bar.setAttribute('y', (height - barHeight).toFixed(2));
    bar.setAttribute('height', barHeight.toFixed(2));
    bar.classList.toggle('is-now', i === history.length - 1);
  });
  const firstSecond = Math.floor(atMs / 1000) - history.length + 1;
  const started = Math.min(width, Math.max(0, (Math.floor(sinceMs / 1000) - firstSecond) * slot));
  $('spark-nodata').setAttribute('x2', started.toFixed(2));
  $('spark-base').setAttribute('x1', started.toFixed(2));
  $('sparkline').dataset.history = history.join(',');
}

function renderTotals(totals) {
  if (setNumber($('total-value'), totals.events)) flash($('total-value'));
  const since = new Date(totals.since);
  const note = $('total-note');
  note.textContent = `since ${timeFormat.format(since)}`;
  note.title = `Counted by this gateway since it started at ${since.toLocaleString()}`;
  const types = totals.types;
  setNumber($('types-value'), types.length + (totals.otherTypes > 0 ? 1 : 0));
  const chips = $('type-chips');
  const shown = types.slice(0, 6);
  const signature = JSON.stringify(shown);
  if (chips.dataset.signature === signature) return;
  chips.dataset.signature = signature;
  chips.replaceChildren(
    ...shown.map(({ type, count }) => {
      const chip = el('li', `type-chip ${hueClass(type)}`);
      chip.title = type;
      chip.append(
        el('span', 'type-dot'),
        el('span', 'chip-name', type),
        el('b', '', numberFormat.format(count)),
      );
      return chip;
    }),
  );
  if (types.length > shown.length)
    chips.append(el('li', 'type-chip', `+${types.length - shown.length} more`));
}

// -- leaderboards

const boards = new Map(); // type -> { card, list, sum, rows: Map<target, row> }

function renderBoards(top) {
  const grid = $('boards');
  $('boards-empty').hidden = top.types.length > 0;
  const note = $('boards-note');
  note.classList.toggle('is-warning', Boolean(top.error));
  note.textContent = top.error
    ? top.error
    : `all-time counts · top ${top.limit} per type${top.typesOmitted > 0 ? ` · ${top.typesOmitted} more types not shown` : ''}`;

  const seen = new Set();
  top.types.forEach((leaders, index) => {
    seen.add(leaders.type);
    let board = boards.get(leaders.type);
    if (!board) {
      board = createBoard(leaders.type);
      boards.set(leaders.type, board);
    }
    if (grid.children[index] !== board.card) grid.insertBefore(board.card, grid.children[index] ?? null);
    updateBoard(board, leaders.targets, top.limit);
  });
  for (const [type, board] of boards) {
    if (!seen.has(type)) {
      board.card.remove();
      boards.delete(type);
    }
  }
}

function createBoard(type) {
  const card = el('article', `board ${hueClass(type)}`);
  card.dataset.type = type;
  const head = el('header', 'board-head');
  const title = el('h3', 'board-title', type);
  title.title = type;
  const sum = el('span', 'board-sum');
  head.append(el('span', 'type-dot'), title, sum);
  const list = el('ol', 'board-rows');
  card.append(head, list);
  return { card, list, sum, rows: new Map() };
}

function updateBoard(board, targets, limit) {
  const max = Math.max(1, ...targets.map((t) => t.count));
  const before = new Map();
  for (const [target, row] of board.rows) before.set(target, row.element.getBoundingClientRect().top);

  const keep = new Set();
  targets.forEach(({ target, count }, index) => {
    keep.add(target);
    let row = board.rows.get(target);
    const isNew = !row;
    if (!row) {
      row = createRow(target);
      board.rows.set(target, row);
    }
    row.rank.textContent = String(index + 1);
    row.bar.style.setProperty('--share', (count / max).toFixed(4));
    if (board.list.children[index] !== row.element)
      board.list.insertBefore(row.element, board.list.children[index] ?? null);
    if (setNumber(row.count, count) && !isNew) flash(row.count);
    if (isNew && motion && before.size > 0)
      row.element.animate([{ opacity: 0 }, { opacity: 1 }], { duration: 400, easing: 'ease-out' });
  });
  for (const [target, row] of board.rows) {
    if (!keep.has(target)) {
      row.element.remove();
      board.rows.delete(target);
    }
  }
  board.sum.textContent =
    targets.length >= limit
      ? `top ${limit}`
      : targets.length === 1
        ? '1 target'
        : `${targets.length} targets`;

  // FLIP: rows that moved glide from where they were.
  if (!motion) return;
  for (const [target, top] of before) {
    const row = board.rows.get(target);
    if (!row) continue;
    const delta = top - row.element.getBoundingClientRect().top;
    if (Math.abs(delta) > 1)
      row.element.animate([{ transform: `translateY(${delta}px)` }, { transform: 'none' }], {
        duration: 450,
        easing: 'cubic-bezier(0.2, 0.8, 0.2, 1)',
      });
  }
}

function createRow(target) {
  const element = el('li', 'row');
  element.dataset.target = target;
  const bar = el('span', 'row-bar');
  const rank = el('span', 'rank');
  const name = el('span', 'target', target);
  name.title = target;
  const count = el('span', 'count');
  element.append(bar, rank, name, count);
  return { element, bar, rank, count };
}

// -- latest events

const latestRows = new Map(); // key -> element

function renderLatest(latest) {
  const list = $('latest');
  $('latest-empty').hidden = latest.length > 0;
  $('latest-note').textContent = latest.length > 0 ? 'newest first' : '';
  const keys = new Set();
  latest.forEach((event, index) => {
    const key = event.id || `${event.time}|${event.type}|${event.target}|${index}`;
    keys.add(key);
    let row = latestRows.get(key);
    if (!row) {
      row = createEventRow(event);
      latestRows.set(key, row);
      if (motion && list.children.length > 0)
        row.animate(
          [
            { opacity: 0, transform: 'translateY(-4px)' },
            { opacity: 1, transform: 'none' },
          ],
          { duration: 350, easing: 'ease-out' },
        );
    }
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] ?? null);
  });
  for (const [key, row] of latestRows) {
    if (!keys.has(key)) {
      row.remove();
      latestRows.delete(key);
    }
  }
}

function createEventRow(event) {
  const row = el('li', `event ${hueClass(event.type)}`);
  const time = el('time', 'event-time', event.time ? timeFormat.format(new Date(event.time)) : '–');
  if (event.time) time.dateTime = event.time;
  const type = el('span', 'type-pill');
  type.title = event.type;
  type.append(el('span', 'type-dot'), el('span', '', event.type));
  const target = el('span', 'target', event.target);
  target.title = event.target;
  const meta = [];
  if (event.userId) meta.push(`user ${event.userId}`);
  if (event.value !== null && event.value !== undefined)
    meta.push(`value ${numberFormat.format(event.value)}`);
  row.append(time, type, target);
  if (meta.length > 0) row.append(el('span', 'event-meta', meta.join(' · ')));
  return row;
}

// -- alerts: the notifications for "dashboard" (channel notifications, docs/stream.md)

const MAX_ALERTS = 30;
const KIND_TITLE = {
  milestone: 'Milestone',
  threshold: 'Threshold',
  spike: 'Spike',
  destination: 'Destination',
};

const alerts = {
  /** id -> notification, the newest MAX_ALERTS kept. */
  byId: new Map(),
  /** The newest seq seen (of a notification, or of caughtUp): where a reconnect resumes. */
  lastSeq: null,
  /** The history before the first subscription was read once. */
  historyRead: false,
  unavailable: null,
};

const bigger = (a, b) => (a === null || BigInt(b) > BigInt(a) ? b : a);

function addAlerts(list) {
  for (const n of list) {
    alerts.byId.set(n.id, n);
    alerts.lastSeq = bigger(alerts.lastSeq, n.seq);
  }
  const newest = [...alerts.byId.values()].sort((x, y) => (BigInt(y.seq) > BigInt(x.seq) ? 1 : -1));
  alerts.byId = new Map(newest.slice(0, MAX_ALERTS).map((n) => [n.id, n]));
  alerts.unavailable = null;
  renderAlerts();
}

/** Live from `seq` on; the first time, the newest ones kept before it are listed once. */
function caughtUp(seq) {
  alerts.lastSeq = bigger(alerts.lastSeq, seq);
  alerts.unavailable = null;
  renderAlerts();
  if (alerts.historyRead) return;
  alerts.historyRead = true;
  const before = (BigInt(seq) + 1n).toString();
  fetch(`/v1/notifications?recipient=dashboard&pageSize=${MAX_ALERTS}&pageToken=${before}`)
    .then((response) => (response.ok ? response.json() : { notifications: [] }))
    .then((page) => addAlerts(page.notifications ?? []))
    .catch(() => {});
}

function renderAlerts() {
  const list = $('alerts');
  const shown = [...alerts.byId.values()];
  $('alerts-empty').hidden = shown.length > 0;
  const note = $('alerts-note');
  note.classList.toggle('is-warning', Boolean(alerts.unavailable));
  note.textContent = alerts.unavailable ?? (shown.length > 0 ? 'newest first' : '');
  const items = shown.map((n) => {
    let item = list.querySelector(`[data-id="${CSS.escape(n.id)}"]`);
    if (item) return item;
    item = el('li', 'alert');
    item.dataset.id = n.id;
    item.dataset.kind = n.kind;
    item.dataset.severity = n.kind === 'spike' || n.kind === 'destination' ? 'warning' : 'info';
    const when = n.createdAt ? timeFormat.format(new Date(n.createdAt)) : '';
    const title = el(
      'span',
      'alert-title',
      `${KIND_TITLE[n.kind] ?? 'Alert'}${n.type ? ` · ${n.type}` : ' disabled'}`,
    );
    const text = el('span', 'alert-text', `${n.message}${when ? ` · ${when}` : ''}`);
    item.append(el('span', 'type-dot'), title, text);
    if (n.target && n.kind !== 'destination') {
      const open = el('button', 'alert-target', n.target);
      open.type = 'button';
      open.title = `Open ${n.target}`;
      open.addEventListener('click', () => openTarget(n.target));
      item.append(open);
    }
    if (motion && list.children.length > 0)
      item.animate([{ opacity: 0 }, { opacity: 1 }], { duration: 400, easing: 'ease-out' });
    return item;
  });
  list.replaceChildren(...items);
}

// -- scenario views: what the simulator's scenarios are about, from the query APIs

const moneyFormat = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const VIEW_REFRESH_MS = 5_000;

/** The card holders with the highest spend over 6 hours (GET /v1/aggregates/top, docs/aggregates.md). */
const spenders = { rows: new Map(), error: null };

async function refreshSpenders() {
  let entries = [];
  try {
    const body = await getJson('/v1/aggregates/top?type=transaction&window=6h&limit=8');
    entries = body.entries ?? [];
    spenders.error = null;
  } catch (error) {
    spenders.error = error.message; // e.g. transactions not ranked here: the view stays hidden
  }
  renderSpenders(entries);
}

function renderSpenders(entries) {
  const card = $('spenders');
  card.hidden = entries.length === 0;
  const max = Math.max(1, ...entries.map((e) => e.sum));
  const keep = new Set();
  entries.forEach((entry, index) => {
    keep.add(entry.userId);
    let row = spenders.rows.get(entry.userId);
    if (!row) {
      row = createRow(entry.userId);
      row.element.dataset.user = entry.userId;
      spenders.rows.set(entry.userId, row);
    }
    row.rank.textContent = String(index + 1);
    row.bar.style.setProperty('--share', (Math.max(0, entry.sum) / max).toFixed(4));
    const count = Number(entry.count);
    row.count.replaceChildren(
      moneyFormat.format(entry.sum),
      el('small', '', `${numberFormat.format(count)} ${count === 1 ? 'payment' : 'payments'}`),
    );
    row.count.dataset.sum = String(entry.sum);
    const list = $('spenders-rows');
    if (list.children[index] !== row.element) list.insertBefore(row.element, list.children[index] ?? null);
  });
  for (const [user, row] of spenders.rows)
    if (!keep.has(user)) {
      row.element.remove();
      spenders.rows.delete(user);
    }
  $('spenders-sum').textContent = entries.length > 0 ? 'sum of transaction values' : '';
  renderViews();
}

/**
 * The orders in progress (the `order` projection, docs/entities.md): live counts by city and by
 * restaurant, and each city's couriers on the way drawn from their latest positions.
 */
const orders = { cities: new Map(), restaurants: new Map(), maps: new Map(), error: null };

async function refreshOrders() {
  try {
    const [byCity, byRestaurant, onTheWay] = await Promise.all([
      getJson('/v1/entities/order/counts?by=city'),
      getJson('/v1/entities/order/counts?by=restaurant'),
      getJson('/v1/entities/order?state=picked_up&pageSize=1000'),
    ]);
    orders.error = null;
    renderOrders(byCity.totals ?? {}, byRestaurant.totals ?? {}, onTheWay.entities ?? []);
  } catch (error) {
    // No projection of orders here (or no projector): the view stays hidden.
    orders.error = error.message;
    $('orders').hidden = true;
    renderViews();
  }
}

/** `{ value: count }` as [value, count] rows, highest first, at most `limit`. */
function ranked(totals, limit) {
  return Object.entries(totals)
    .map(([value, count]) => [value, Number(count)])
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, limit);
}

function renderCounts(listId, rows, store) {
  const list = $(listId);
  const max = Math.max(1, ...rows.map(([, count]) => count));
  const keep = new Set();
  rows.forEach(([value, count], index) => {
    keep.add(value);
    let row = store.get(value);
    if (!row) {
      row = createRow(value);
      store.set(value, row);
    }
    row.rank.textContent = String(index + 1);
    row.bar.style.setProperty('--share', (count / max).toFixed(4));
    if (setNumber(row.count, count)) flash(row.count);
    if (list.children[index] !== row.element) list.insertBefore(row.element, list.children[index] ?? null);
  });
  for (const [value, row] of store)
    if (!keep.has(value)) {
      row.element.remove();
      store.delete(value);
    }
}

function renderOrders(cityTotals, restaurantTotals, onTheWay) {
  const cities = ranked(cityTotals, 12);
  $('orders').hidden = cities.length === 0;
  renderViews();
  if (cities.length === 0) return;
  const total = cities.reduce((sum, [, count]) => sum + count, 0);
  $('orders-total').textContent = `${numberFormat.format(total)} in progress`;
  renderCounts('orders-city-rows', cities, orders.cities);
  renderCounts('orders-restaurant-rows', ranked(restaurantTotals, 8), orders.restaurants);
  // Couriers with a position, per city.
  const byCity = new Map();
  for (const entity of onTheWay) {
    const lat = Number(entity.attributes?.lat);
    const lon = Number(entity.attributes?.lon);
    if (!Number.isFinite(lat) || !Number.isFinite(lon)) continue;
    const city = entity.attributes?.city || 'elsewhere';
    if (!byCity.has(city)) byCity.set(city, []);
    byCity.get(city).push({ id: entity.id, lat, lon });
  }
  $('orders-map-note').textContent = `${numberFormat.format(onTheWay.length)} picked up`;
  const container = $('orders-maps');
  const shown = new Set();
  for (const [city] of cities) {
    const points = byCity.get(city) ?? [];
    shown.add(city);
    let map = orders.maps.get(city);
    if (!map) {
      map = createCityMap(city);
      orders.maps.set(city, map);
    }
    container.append(map.figure); // in the order of the cities' counts
    drawCityMap(map, points);
  }
  for (const [city, map] of orders.maps)
    if (!shown.has(city)) {
      map.figure.remove();
      orders.maps.delete(city);
    }
}

const MAP_WIDTH = 240;
const MAP_HEIGHT = 180;

function createCityMap(city) {
  const figure = el('figure', 'city-map');
  figure.dataset.city = city;
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${MAP_WIDTH} ${MAP_HEIGHT}`);
  svg.setAttribute('role', 'img');
  const grid = document.createElementNS(SVG_NS, 'g');
  const dots = document.createElementNS(SVG_NS, 'g');
  svg.append(grid, dots);
  const name = el('span', 'city-name', city);
  const count = el('span', 'city-count');
  const caption = el('figcaption');
  caption.append(name, count);
  figure.append(svg, caption);
  return { figure, svg, grid, dots, count };
}

/**
 * Draws `points` (lat, lon) in an equirectangular projection around their centre (a degree of
 * longitude shortened by the cosine of the latitude), fitted to the map with a margin; a faint
 * grid every kilometre gives the scale.
 */
function drawCityMap(map, points) {
  map.count.textContent = `${numberFormat.format(points.length)} on the way`;
  map.svg.setAttribute('aria-label', `${points.length} couriers on the way in ${map.figure.dataset.city}`);
  if (points.length === 0) {
    map.dots.replaceChildren();
    map.grid.replaceChildren();
    return;
  }
  const KM_PER_DEGREE = 111.32;
  const lat0 = points.reduce((s, p) => s + p.lat, 0) / points.length;
  const lon0 = points.reduce((s, p) => s + p.lon, 0) / points.length;
  const cos = Math.cos((lat0 * Math.PI) / 180);
  const xy = points.map((p) => ({
    id: p.id,
    x: (p.lon - lon0) * KM_PER_DEGREE * cos,
    y: (lat0 - p.lat) * KM_PER_DEGREE,
  }));
  const spanKm = Math.max(
    2,
    ...xy.map((p) => Math.max(Math.abs(p.x) * (MAP_HEIGHT / MAP_WIDTH), Math.abs(p.y))),
  );
  const scale = (MAP_HEIGHT / 2 - 12) / spanKm; // px per km
  const lines = [];
  for (let km = -Math.floor(spanKm * 2); km <= Math.floor(spanKm * 2); km++) {
    const x = MAP_WIDTH / 2 + km * scale;
    const y = MAP_HEIGHT / 2 + km * scale;
    if (x >= 0 && x <= MAP_WIDTH) lines.push(svgLine(x, 0, x, MAP_HEIGHT));
    if (y >= 0 && y <= MAP_HEIGHT) lines.push(svgLine(0, y, MAP_WIDTH, y));
  }
  map.grid.replaceChildren(...lines);
  map.dots.replaceChildren(
    ...xy.map((p) => {
      const dot = document.createElementNS(SVG_NS, 'circle');
      dot.setAttribute('class', 'courier');
      dot.setAttribute('cx', (MAP_WIDTH / 2 + p.x * scale).toFixed(1));
      dot.setAttribute('cy', (MAP_HEIGHT / 2 + p.y * scale).toFixed(1));
      dot.setAttribute('r', '3.5');
      dot.dataset.order = p.id;
      const title = document.createElementNS(SVG_NS, 'title');
      title.textContent = p.id;
      dot.append(title);
      return dot;
    }),
  );
}

function svgLine(x1, y1, x2, y2) {
  const line = document.createElementNS(SVG_NS, 'line');
  line.setAttribute('class', 'grid-line');
  line.setAttribute('x1', x1.toFixed(1));
  line.setAttribute('y1', y1.toFixed(1));
  line.setAttribute('x2', x2.toFixed(1));
  line.setAttribute('y2', y2.toFixed(1));
  return line;
}

function renderViews() {
  const shown = !$('spenders').hidden || !$('orders').hidden;
  $('views').hidden = !shown;
  $('views-note').textContent = 'refreshed every 5 s';
}

function refreshViews() {
  if (document.hidden) return;
  refreshSpenders();
  refreshOrders();
}
setInterval(refreshViews, VIEW_REFRESH_MS);
refreshViews();

// -- a target's page: counters, unique users, today's hours, its alerts (REST, docs/alerts.md)

async function getJson(path) {
  const response = await fetch(path);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message ?? `HTTP ${response.status}`);
  return body;
}

async function openTarget(target) {
  const dialog = $('target-view');
  dialog.dataset.target = target;
  $('target-title').textContent = target;
  $('target-title').title = target;
  for (const id of ['target-counters', 'target-uniques', 'target-alerts']) $(id).replaceChildren();
  $('target-hours').replaceChildren();
  $('target-status').textContent = 'Loading…';
  if (!dialog.open) dialog.showModal();
  const q = encodeURIComponent(target);
  const today = new Date().toISOString().slice(0, 10);
  try {
    const [counters, report, history] = await Promise.all([
      getJson(`/v1/counters?target=${q}`),
      getJson(`/v1/report?target=${q}&date=${today}`),
      getJson(`/v1/notifications?target=${q}&pageSize=20`),
    ]);
    const types = counters.counts.map((c) => c.type);
    const uniques =
      types.length > 0
        ? await getJson(
            `/v1/uniques?target=${q}&${types.map((t) => `types=${encodeURIComponent(t)}`).join('&')}`,
          )
        : { uniques: [] };
    if (dialog.dataset.target !== target) return; // another target was opened meanwhile
    renderTargetCounters(counters.counts);
    renderTargetUniques(uniques);
    renderTargetHours(report.hours, today);
    renderTargetAlerts(history.notifications);
    $('target-status').textContent = '';
  } catch (error) {
    if (dialog.dataset.target === target)
      $('target-status').textContent = `Could not read ${target}: ${error.message}`;
  }
}

function statRow(label, value, title) {
  const row = el('li', 'stat-row');
  const name = el('span', 'stat-name', label);
  name.title = title ?? label;
  row.append(name, el('b', 'stat-value', value));
  return row;
}

function renderTargetCounters(counts) {
  const list = $('target-counters');
  if (counts.length === 0) list.append(el('li', 'stat-empty', 'No events counted yet'));
  for (const c of counts) {
    const sum = Number(c.sum) !== 0 ? ` · sum ${numberFormat.format(Number(c.sum))}` : '';
    list.append(statRow(c.type, `${numberFormat.format(Number(c.count))}${sum}`));
  }
}

function renderTargetUniques(uniques) {
  const list = $('target-uniques');
  if (uniques.uniques.length === 0) list.append(el('li', 'stat-empty', 'No users yet'));
  const error = uniques.relativeStandardError
    ? ` (±${(uniques.relativeStandardError * 100).toFixed(2)} %)`
    : '';
  for (const u of uniques.uniques)
    list.append(
      statRow(
        u.type,
        `${numberFormat.format(Number(u.day))} today · ${numberFormat.format(Number(u.allTime))} all time`,
        `approximate${error}`,
      ),
    );
}

/** Today's 24 hours (UTC) as bars: every type's count summed per hour. */
function renderTargetHours(hours, day) {
  const svg = $('target-hours');
  const totals = Array.from({ length: 24 }, () => 0);
  for (const h of hours) totals[h.hour] = h.counts.reduce((sum, c) => sum + Number(c.count), 0);
  const top = Math.max(1, ...totals);
  const width = 240;
  const height = 60;
  const slot = width / 24;
  totals.forEach((count, hour) => {
    const bar = document.createElementNS(SVG_NS, 'rect');
    const barHeight = count > 0 ? Math.max(1.5, (count / top) * (height - 2)) : 0;
    bar.setAttribute('class', 'hour-bar');
    bar.setAttribute('x', (hour * slot + 0.5).toFixed(2));
    bar.setAttribute('width', (slot - 1).toFixed(2));
    bar.setAttribute('y', (height - barHeight).toFixed(2));
    bar.setAttribute('height', barHeight.toFixed(2));
    const title = document.createElementNS(SVG_NS, 'title');
    title.textContent = `${String(hour).padStart(2, '0')}:00 UTC · ${numberFormat.format(count)}`;
    bar.append(title);
    svg.append(bar);
  });
  svg.dataset.hours = totals.join(',');
  $('target-hours-note').textContent =
    `${day} (UTC) · ${numberFormat.format(totals.reduce((a, b) => a + b, 0))} events`;
}

function renderTargetAlerts(notifications) {
  const list = $('target-alerts');
  if (notifications.length === 0) list.append(el('li', 'stat-empty', 'No alerts for this target'));
  for (const n of notifications) {
    const when = n.createdAt ? new Date(n.createdAt).toLocaleString() : '';
    list.append(statRow(n.message, when, `${KIND_TITLE[n.kind] ?? n.kind} · seq ${n.seq}`));
  }
}

$('target-close').addEventListener('click', () => $('target-view').close());
$('boards').addEventListener('click', (event) => {
  const row = event.target.closest?.('.row');
  if (row?.dataset.target) openTarget(row.dataset.target);
});

// ---- start -----------------------------------------------------------------------------------------

$('boards-hint').textContent =
  `curl -X POST ${window.location.host}/v1/events -d '{"type":"click","target":"home","userId":"u1"}'`;
connect();
