/* continuous-play live dashboard: plain JavaScript, no build step, nothing from a CDN.
 *
 * REST (relative URLs, so the page also works behind a path prefix):
 *   GET v1/sessions, v1/sessions/{id}, v1/sessions/{id}/evaluations, readyz;
 *   POST v1/sessions, v1/sessions/{id}/pause|resume|stop; DELETE v1/sessions/{id}.
 * Live (WebSocket): v1/sessions/{id}/live?since=SEQ&moves=true for the selected session
 * (replayed from seq 0, so the charts are built from the stored events, then the live
 * tail; after a drop it reconnects with since = the last seq seen, with backoff) and
 * v1/live (all sessions) to keep the sessions table current.
 * The Fleet panel shows the worker's newest stats (the session view's `metrics` while it
 * runs, else the newest stored snapshot): each self-play actor, the learner's steps/s, the
 * samples drawn per new position, and the generation lag of the recent finished games.
 * With API keys on, the key (kept in localStorage) goes as `Authorization: Bearer` and as
 * `?token=` on WebSockets. Text from the server is only ever set as textContent.
 */
"use strict";

(() => {
  // ---------------------------------------------------------------------------------------
  // helpers
  const $ = (id) => document.getElementById(id);
  // The service's names, the only place this file spells them: checked against
  // service/lifecycle.py (State, ACTIVE, FINAL, ACTIONS, ActorState) and service/event_types.py
  // (EventType, STORED) by tests/unit/test_dashboard_constants.py.
  const STATE = Object.freeze({
    PENDING: "pending", RUNNING: "running", PAUSED: "paused", STOPPING: "stopping",
    COMPLETED: "completed", STOPPED: "stopped", FAILED: "failed",
  });
  const ACTIVE = new Set([STATE.PENDING, STATE.RUNNING, STATE.PAUSED, STATE.STOPPING]);
  const TERMINAL = new Set([STATE.COMPLETED, STATE.STOPPED, STATE.FAILED]);
  const ALLOWED = Object.freeze({ // the states each action is allowed in (lifecycle.ACTIONS)
    pause: new Set([STATE.RUNNING]),
    resume: new Set([STATE.PAUSED]),
    stop: new Set([STATE.PENDING, STATE.RUNNING, STATE.PAUSED]),
  });
  const ACTOR_STATE = Object.freeze({ STARTING: "starting", RUNNING: "running", PAUSED: "paused" });
  const EVENT = Object.freeze({
    SESSION_STATE: "session.state", GAME_FINISHED: "game.finished", LEARNING_STEP: "learning.step",
    CHECKPOINT_SAVED: "checkpoint.saved", EVALUATION_FINISHED: "evaluation.finished",
    METRICS_SNAPSHOT: "metrics.snapshot", ALERT_RAISED: "alert.raised", GAME_MOVE: "game.move",
  });
  const KEY_STORE = "continuous-play.api-key";
  const LOG_LIMIT = 300;
  const POLL_MS = 5000;
  const HEALTH_MS = 15000;
  const RATE_WINDOW_S = 60;
  const LAG_WINDOW = 50; // the recent finished games the Fleet panel's generation lag is taken over
  const AUTH_CLOSE = new Set([1008, 4001, 4003, 4401, 4403]);
  const GONE_CLOSE = new Set([4404]);
  const BAD_QUERY_CLOSE = 4400; // e.g. since beyond the session's last seq: the store was reset

  /** An element with attributes and children (strings become text nodes: never HTML). */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  const enc = encodeURIComponent;
  const fmtInt = (n) => (n === null || n === undefined || !isFinite(n) ? "—" : Math.round(n).toLocaleString("en-US"));
  const fmt = (n, digits = 1) => (n === null || n === undefined || !isFinite(n) ? "—" : Number(n).toFixed(digits));
  const shortId = (id) => String(id).slice(0, 8);
  function timeOf(ts) {
    const d = ts ? new Date(ts) : new Date();
    return isNaN(d) ? "" : d.toLocaleTimeString("en-GB", { hour12: false });
  }
  function ago(ts) {
    const d = new Date(ts);
    if (isNaN(d)) return "";
    const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return d.toLocaleDateString("en-GB");
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function throttle(fn, ms) {
    let timer = null;
    return () => { if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms); };
  }

  // ---------------------------------------------------------------------------------------
  // API key
  const keysOn = document.querySelector('meta[name="cp-api-keys"]')?.content === "on";
  function apiKey() {
    try { return localStorage.getItem(KEY_STORE) || ""; } catch (_) { return ""; }
  }
  function setKey(value) {
    try {
      if (value) localStorage.setItem(KEY_STORE, value); else localStorage.removeItem(KEY_STORE);
    } catch (_) { /* storage off: the key lives for this page only */ }
    memoryKey = value;
  }
  let memoryKey = "";
  const currentKey = () => apiKey() || memoryKey;
  function showKeyForm(note) {
    $("key-form").hidden = false;
    setKeyNote(note || (currentKey() ? "key saved" : "this server needs an API key"));
  }
  function setKeyNote(text) {
    const note = $("key-note");
    note.textContent = text;
    note.classList.toggle("warn", /needs|refused/.test(text));
  }

  // ---------------------------------------------------------------------------------------
  // REST
  class ApiError extends Error {
    constructor(status, problem) {
      const detail = problem && (problem.detail || problem.title);
      super(detail ? `${detail}` : `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    const key = currentKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { detail: text.slice(0, 300) }; }
    }
    if (!response.ok) {
      if (response.status === 401) showKeyForm(currentKey() ? "the key was refused" : "this server needs an API key");
      throw new ApiError(response.status, data);
    }
    return data;
  }

  let noticeTimer = null;
  function notice(message, kind = "info") {
    const box = $("notice");
    box.textContent = message;
    box.className = `notice ${kind === "error" ? "error" : ""}`;
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 9000 : 4000);
  }

  // ---------------------------------------------------------------------------------------
  // health
  async function checkHealth() {
    const pill = $("health");
    try {
      const response = await fetch("readyz", { cache: "no-store", headers: { Accept: "application/json" } });
      if (response.ok) { pill.textContent = "ready"; pill.className = "pill ok"; }
      else { pill.textContent = "not ready"; pill.className = "pill warn"; }
    } catch (_) {
      pill.textContent = "unreachable"; pill.className = "pill bad";
    }
  }

  // ---------------------------------------------------------------------------------------
  // live feeds (WebSocket with reconnect)
  function wsUrl(path, params) {
    const url = new URL(path, document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const key = currentKey();
    if (key) params.token = key;
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** One WebSocket feed; `since` (when given) resumes a session's numbered events. */
  class LiveFeed {
    constructor(name, path, { resumable, params, onEvent, onStatus, onOpen, onReset }) {
      this.name = name;
      this.path = path;
      this.resumable = resumable;
      this.params = params || {};
      this.onEvent = onEvent;
      this.onStatus = onStatus || (() => {});
      this.onOpen = onOpen || (() => {});
      this.onReset = onReset || (() => {});
      this.lastSeq = 0;
      this.attempt = 0;
      this.connects = 0;
      this.reconnects = 0;
      this.duplicates = 0;
      this.ws = null;
      this.timer = null;
      this.stopped = false;
      this.urls = [];
    }

    start() { this.stopped = false; this.connect(); }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) { try { this.ws.close(1000, "closed by the dashboard"); } catch (_) { /* closed */ } }
      this.ws = null;
    }

    /** Close the socket as a network drop would: it reconnects with `since` (tests use it). */
    drop() { if (this.ws) this.ws.close(4000, "dropped"); }

    connect() {
      clearTimeout(this.timer);
      const params = { ...this.params };
      if (this.resumable) params.since = this.lastSeq;
      const url = wsUrl(this.path, params);
      this.urls.push(url.replace(/([?&]token=)[^&]*/, "$1***"));
      this.onStatus("connecting", this.connects ? "reconnecting…" : "connecting…");
      let ws;
      try { ws = new WebSocket(url); } catch (err) { this.retry(); return; }
      this.ws = ws;
      let opened = 0;
      ws.onopen = () => {
        opened = Date.now();
        if (this.connects > 0) this.reconnects += 1;
        this.connects += 1;
        this.onStatus("live", this.reconnects ? `live · reconnected ${this.reconnects}×` : "live");
        this.onOpen(this);
      };
      ws.onmessage = (message) => {
        let event;
        try { event = JSON.parse(message.data); } catch (_) { return; }
        if (!event || typeof event !== "object") return;
        if (this.resumable && typeof event.seq === "number") {
          if (event.seq <= this.lastSeq) { this.duplicates += 1; return; } // already seen
          this.lastSeq = event.seq;
        }
        this.attempt = 0;
        try { this.onEvent(event); } catch (err) { console.warn("dashboard: event not shown", err); }
      };
      ws.onclose = (ev) => {
        if (this.ws === ws) this.ws = null;
        if (this.stopped) return;
        if (opened && Date.now() - opened > 10000) this.attempt = 0;
        if (AUTH_CLOSE.has(ev.code)) {
          showKeyForm(currentKey() ? "the key was refused" : "the live feed needs an API key");
          this.onStatus("bad", "needs an API key");
          this.timer = setTimeout(() => this.connect(), 30000);
          return;
        }
        if (GONE_CLOSE.has(ev.code)) { this.onStatus("bad", "session not found"); return; }
        if (ev.code === BAD_QUERY_CLOSE) {
          if (!this.resumable || this.lastSeq === 0) { this.onStatus("bad", "refused by the server"); return; }
          this.lastSeq = 0; // the server does not know our seq: start over from its store
          this.onReset(this);
        }
        this.retry(ev.code === 4008 ? "too slow: resuming" : null);
      };
      ws.onerror = () => { /* onclose follows */ };
    }

    retry(reason) {
      if (this.stopped) return;
      const delay = Math.min(10000, 400 * 2 ** this.attempt) * (0.8 + 0.4 * Math.random());
      this.attempt = Math.min(this.attempt + 1, 8);
      const label = `${reason || "offline"} · retry in ${(delay / 1000).toFixed(1)} s`;
      this.onStatus("connecting", label);
      this.timer = setTimeout(() => this.connect(), delay);
    }

    /** Reconnect now (after a key was saved). */
    kick() {
      if (this.stopped) return;
      if (this.ws) { this.drop(); return; }
      this.attempt = 0;
      this.connects = 0;
      this.reconnects = 0;
      this.connect();
    }
  }

  // ---------------------------------------------------------------------------------------
  // sessions table
  const table = {
    items: [],
    details: new Map(), // id -> {body, at}
    nextCursor: null,
    confirmDelete: null, // {id, until}
    busy: new Set(),
  };

  function presetOf(session) { return (session.config && session.config.chess_preset) || "—"; }

  function gamesPerMinute(session) {
    if (!session.started_at) return null;
    const start = new Date(session.started_at).getTime();
    const end = session.finished_at ? new Date(session.finished_at).getTime() : Date.now();
    const minutes = (end - start) / 60000;
    return minutes > 0.05 ? session.games_done / minutes : null;
  }

  async function refreshSessions() {
    let page;
    try {
      page = await api("v1/sessions?limit=50");
    } catch (err) {
      $("sessions-meta").textContent = `could not list sessions: ${err.message}`;
      return;
    }
    table.items = page.items;
    table.nextCursor = page.next_cursor;
    const now = Date.now();
    await Promise.all(page.items.map(async (s) => {
      const known = table.details.get(s.id);
      const fresh = known && known.body.state === s.state && known.body.updated_at === s.updated_at;
      if (fresh && TERMINAL.has(s.state) && now - known.at < 60000) return;
      try {
        table.details.set(s.id, { body: await api(`v1/sessions/${enc(s.id)}`), at: now });
      } catch (_) { /* deleted meanwhile */ }
    }));
    for (const id of [...table.details.keys()]) {
      if (id !== view.id && !page.items.some((s) => s.id === id)) table.details.delete(id);
    }
    if (view.id && !page.items.some((s) => s.id === view.id)) { // an older session, beyond the list
      try { table.details.set(view.id, { body: await api(`v1/sessions/${enc(view.id)}`), at: now }); } catch (err) {
        if (err.status === 404) { notice(`Session ${shortId(view.id)} no longer exists.`, "error"); select(null); }
      }
    }
    renderSessions();
    if (view.id) renderDetailHead();
  }
  const refreshSoon = throttle(refreshSessions, 700);

  function actionButton(label, action, session, enabled, extraClass) {
    return h("button", {
      type: "button", class: `btn btn-small ${extraClass || ""}`, "data-action": action,
      disabled: !enabled || table.busy.has(session.id),
      on: { click: (ev) => { ev.stopPropagation(); act(session, action, ev.currentTarget); } },
    }, label);
  }

  function eloCell(detail) {
    const elo = detail && detail.elo;
    if (!elo) return h("td", { class: "num muted" }, "—");
    const interval = elo.low !== null && elo.high !== null ? `${Math.round(elo.low)}–${Math.round(elo.high)}` : "";
    return h("td", { class: "num", title: `${elo.opponent}, generation ${elo.generation}` },
      fmtInt(elo.rating), interval ? h("span", { class: "ci" }, interval) : null);
  }

  function renderSessions() {
    const body = document.querySelector("#sessions tbody");
    clear(body);
    $("sessions-empty").hidden = table.items.length > 0;
    const active = table.items.filter((s) => ACTIVE.has(s.state)).length;
    $("sessions-meta").textContent = table.items.length
      ? `${table.items.length}${table.nextCursor ? "+ (newest 50)" : ""} · ${active} active` : "";
    const confirm = table.confirmDelete && table.confirmDelete.until > Date.now() ? table.confirmDelete.id : null;
    for (const s of table.items) {
      const detail = table.details.get(s.id)?.body;
      const merged = detail ? { ...s, ...detail, state: s.state, games_done: Math.max(s.games_done, detail.games_done) } : s;
      const rate = gamesPerMinute(merged);
      const row = h("tr", {
        "data-session": s.id, class: s.id === view.id ? "selected" : "",
        on: { click: () => { if (s.id !== view.id) select(s.id); } },
      },
      h("td", { title: s.id }, h("code", {}, shortId(s.id))),
      h("td", {}, h("span", { class: `badge ${s.state}`, title: s.failure_reason || s.stop_reason || "" }, s.state)),
      h("td", { class: "num" }, fmtInt(merged.games_done),
        s.config && s.config.max_games ? h("span", { class: "ci" }, `/ ${fmtInt(s.config.max_games)}`) : null),
      eloCell(detail),
      h("td", { class: "num" }, rate === null ? "—" : fmt(rate, 1)),
      h("td", {}, presetOf(s)),
      h("td", { class: "muted", title: s.created_at }, ago(s.created_at)),
      h("td", { class: "actions" },
        actionButton("Pause", "pause", s, ALLOWED.pause.has(s.state)),
        actionButton("Resume", "resume", s, ALLOWED.resume.has(s.state)),
        actionButton("Stop", "stop", s, ALLOWED.stop.has(s.state)),
        actionButton(confirm === s.id ? "Confirm delete" : "Delete", "delete", s, TERMINAL.has(s.state),
          `btn-danger ${confirm === s.id ? "confirm" : ""}`)));
      body.append(row);
    }
  }

  async function act(session, action, button) {
    if (action === "delete") {
      const pending = table.confirmDelete;
      if (!pending || pending.id !== session.id || pending.until < Date.now()) {
        table.confirmDelete = { id: session.id, until: Date.now() + 4000 };
        renderSessions();
        setTimeout(renderSessions, 4100);
        return;
      }
      table.confirmDelete = null;
    }
    table.busy.add(session.id);
    if (button) button.disabled = true;
    try {
      if (action === "delete") {
        await api(`v1/sessions/${enc(session.id)}`, { method: "DELETE" });
        notice(`Deleted session ${shortId(session.id)}.`);
        if (view.id === session.id) select(null);
      } else {
        const body = await api(`v1/sessions/${enc(session.id)}/${action}`, { method: "POST" });
        table.details.set(session.id, { body, at: Date.now() });
        notice(`Session ${shortId(session.id)}: ${action} → ${body.state}.`);
      }
    } catch (err) {
      notice(`${action} failed: ${err.message}`, "error");
    } finally {
      table.busy.delete(session.id);
      await refreshSessions();
    }
  }

  // ---------------------------------------------------------------------------------------
  // create form
  function setupCreateForm() {
    const form = $("create-form");
    $("new-session").addEventListener("click", () => {
      form.hidden = !form.hidden;
      if (!form.hidden) $("f-preset").focus();
    });
    $("f-cancel").addEventListener("click", () => { form.hidden = true; $("f-error").textContent = ""; });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const error = $("f-error");
      error.textContent = "";
      let body = {};
      const raw = $("f-overrides").value.trim();
      if (raw) {
        try { body = JSON.parse(raw); } catch (err) { error.textContent = `Overrides are not JSON: ${err.message}`; return; }
        if (!body || typeof body !== "object" || Array.isArray(body)) { error.textContent = "Overrides must be a JSON object."; return; }
      }
      const preset = $("f-preset").value;
      if (preset) body.chess_preset = preset;
      const numbers = [["f-max-games", "max_games", true], ["f-duration", "session_duration_min", false], ["f-seed", "seed", true]];
      for (const [id, name, integer] of numbers) {
        const value = $(id).value.trim();
        if (value === "") continue;
        const n = Number(value);
        if (!isFinite(n) || (integer && !Number.isInteger(n))) { error.textContent = `${name} must be a${integer ? "n integer" : " number"}.`; return; }
        body[name] = n;
      }
      const submit = $("f-submit");
      submit.disabled = true;
      try {
        const created = await api("v1/sessions", { method: "POST", body });
        form.hidden = true;
        notice(`Created session ${shortId(created.id)}.`);
        table.details.set(created.id, { body: created, at: Date.now() });
        await refreshSessions();
        select(created.id);
      } catch (err) {
        const problem = err.problem;
        if (problem && Array.isArray(problem.errors) && problem.errors.length) {
          error.textContent = problem.errors.map((e) => `${e.field}: ${e.msg}`).join("\n");
        } else {
          error.textContent = err.message;
        }
      } finally {
        submit.disabled = false;
      }
    });
  }

  // ---------------------------------------------------------------------------------------
  // the selected session
  const view = {
    id: null,
    feed: null,
    games: [],        // {number, result, ts}
    losses: [],       // {step, policy, value, total}
    snapshots: [],    // {ts, sps, buffer, rss}
    ratings: null,    // latest evaluation.finished ratings {name: {rating, low, high}}
    evaluations: [],  // evaluation.finished data
    generationGames: new Map(),
    seqs: new Set(),  // seqs in the log (no row twice)
    lastGame: null,
    featured: { game: null, actor: 0, moves: [], ply: 0 }, // game: its start number, unique per actor
    lastMoveAt: 0,
    fleet: null,      // {data, at}: the newest worker stats seen (session view or metrics.snapshot)
    lags: [],         // {actor, lag} of the last LAG_WINDOW game.finished events
    actorGames: new Map(), // actor -> games stored (every game.finished: the feed replays from seq 0)
    replacements: 0,  // actors that died and were replaced
    boardUpdates: 0,
    runningSince: null,
    counts: {},
  };

  function resetView() {
    Object.assign(view, {
      games: [], losses: [], snapshots: [], ratings: null, evaluations: [], generationGames: new Map(),
      seqs: new Set(), lastGame: null, featured: { game: null, actor: 0, moves: [], ply: 0 }, lastMoveAt: 0, counts: {},
      runningSince: null, ratingsLoaded: false, fleet: null, lags: [], actorGames: new Map(), replacements: 0,
    });
    clear($("log"));
    clear($("featured-moves"));
    $("featured-label").textContent = "waiting for moves…";
    $("board").src = "dashboard/board.svg?size=360";
    renderLastGame();
    renderRatingsFromEvent();
    renderFleet();
  }

  function select(id) {
    if (view.feed) { view.feed.stop(); view.feed = null; }
    view.id = id;
    history.replaceState(null, "", id ? `#session=${id}` : location.pathname + location.search);
    for (const row of document.querySelectorAll("#sessions tbody tr")) {
      row.classList.toggle("selected", row.dataset.session === id);
    }
    $("detail").hidden = !id;
    if (!id) { setConn("idle", "idle"); return; }
    resetView();
    $("detail-id").textContent = id;
    renderDetailHead();
    view.feed = new LiveFeed("session", `v1/sessions/${enc(id)}/live`, {
      resumable: true,
      params: { moves: "true" },
      onEvent: onSessionEvent,
      onStatus: setConn,
      onReset: () => { resetView(); renderCharts(); },
    });
    window.cpDashboard.feed = view.feed;
    view.feed.start();
    loadRatings();
    renderCharts();
  }

  function setConn(kind, label) {
    const pill = $("conn");
    pill.textContent = label;
    pill.className = `pill ${kind === "live" ? "ok" : kind === "bad" ? "bad" : kind === "idle" ? "" : "warn"}`;
  }

  function stat(label, value, title) {
    return h("div", { title: title || "" }, h("dt", {}, label), h("dd", {}, value));
  }

  function renderDetailHead() {
    const detail = table.details.get(view.id)?.body;
    const listed = table.items.find((s) => s.id === view.id);
    const state = listed ? listed.state : detail ? detail.state : "…";
    const badge = $("detail-state");
    badge.textContent = state;
    badge.className = `badge ${state}`;
    const stats = $("detail-stats");
    clear(stats);
    const card = detail && detail.scorecard;
    const metrics = (detail && detail.metrics) || {};
    const lastSnap = view.snapshots[view.snapshots.length - 1];
    const games = Math.max(detail ? detail.games_done : 0, view.games.length ? view.games[view.games.length - 1].number : 0);
    stats.append(stat("games", fmtInt(games)));
    if (card) {
      stats.append(stat("white / draw / black", `${fmtInt(card.white_wins)} / ${fmtInt(card.draws)} / ${fmtInt(card.black_wins)}`,
        `${fmtInt(card.adjudicated)} adjudicated`));
    }
    const elo = detail && detail.elo;
    stats.append(stat("elo", elo ? `${fmtInt(elo.rating)}` : "—",
      elo && elo.low !== null ? `95% interval ${Math.round(elo.low)}–${Math.round(elo.high)}` : "no evaluation yet"));
    const sps = lastSnap ? lastSnap.sps : metrics.simulations_per_second;
    stats.append(stat("sims/s", fmtInt(sps)));
    const buffer = lastSnap ? lastSnap.buffer : metrics.buffer_size;
    stats.append(stat("buffer", fmtInt(buffer), "replay buffer positions"));
    const rss = lastSnap ? lastSnap.rss : metrics.rss_mb;
    stats.append(stat("worker RSS", rss === undefined || rss === null ? "—" : `${fmtInt(rss)} MB`));
    if (detail && detail.metrics) noteStats(detail.metrics, Date.parse(detail.metrics.at || detail.metrics_at));
    renderFleet();
  }

  // -- fleet ---------------------------------------------------------------------------------
  /** Keep `data` (the worker's stats as of `at`, ms) unless newer ones are kept already. */
  function noteStats(data, at) {
    if (!data || typeof data !== "object") return;
    const when = isFinite(at) ? at : 0;
    if (view.fleet && view.fleet.at > when) return;
    view.fleet = { data, at: when };
  }

  /** Mean and max of the generation lags of the recent finished games (of one actor, if given). */
  function lagOf(actor) {
    const lags = view.lags.filter((g) => actor === undefined || g.actor === actor).map((g) => g.lag);
    if (!lags.length) return null;
    return { mean: lags.reduce((a, b) => a + b, 0) / lags.length, max: Math.max(...lags), games: lags.length };
  }

  /** The Fleet panel's rows: the actors of the newest stats, else the actors seen in games. */
  function fleetRows() {
    const stats = view.fleet ? view.fleet.data : null;
    const actors = stats && Array.isArray(stats.actors) ? stats.actors.filter((a) => a && typeof a === "object") : [];
    const rows = actors.length ? actors.map((a) => ({ ...a, actor: a.actor ?? 0 }))
      : [...view.actorGames.keys()].map((actor) => ({ actor }));
    return rows.sort((p, q) => p.actor - q.actor);
  }

  function renderFleet() {
    const body = document.querySelector("#fleet tbody");
    const box = $("fleet-stats");
    clear(body);
    clear(box);
    const rows = fleetRows();
    $("fleet-empty").hidden = rows.length > 0;
    for (const a of rows) {
      const lag = lagOf(a.actor);
      body.append(h("tr", { "data-actor": a.actor },
        h("td", { class: "num" }, String(a.actor)),
        h("td", {}, a.state ? h("span", { class: `badge ${a.state}` }, a.state) : "—"),
        h("td", { class: "num" }, fmtInt(a.simulations_per_second)),
        h("td", { class: "num" }, fmtInt(a.generation)),
        h("td", { class: "num" }, fmtInt(a.games_in_flight)),
        h("td", { class: "num" }, fmtInt(view.actorGames.get(a.actor) ?? 0)),
        h("td", { class: "num", title: lag ? `max ${lag.max} over ${lag.games} recent games` : "" }, lag ? fmt(lag.mean, 2) : "—")));
    }
    const stats = view.fleet ? view.fleet.data : {};
    const detail = table.details.get(view.id)?.body;
    const target = detail && detail.config ? detail.config.train_samples_per_position : null;
    const lag = lagOf();
    const running = rows.filter((a) => a.state === ACTOR_STATE.RUNNING).length;
    box.append(
      stat("actors", rows.length ? `${running} / ${rows.length}` : "—", "running / reporting"),
      stat("learner steps/s", fmt(stats.learner_steps_per_second, 2)),
      stat("samples/position", `${fmt(stats.samples_per_position, 2)} / ${fmt(target, 2)}`,
        "training samples drawn per new self-play position, actual / TRAIN_SAMPLES_PER_POSITION"),
      stat("generation", fmtInt(stats.generation), "the newest generation self-play plays"),
      stat("generation lag", lag ? `${fmt(lag.mean, 2)} / ${lag.max}` : "—",
        `mean / max over the last ${lag ? lag.games : 0} finished games (newest generation minus the one that started a game)`),
      stat("replaced", fmtInt(view.replacements), "actors that died and were replaced"));
    const listed = table.items.find((s) => s.id === view.id);
    const state = listed ? listed.state : detail ? detail.state : null;
    $("fleet-meta").textContent = !view.fleet ? "waiting for the worker's stats…"
      : `last report ${view.fleet.at ? timeOf(view.fleet.at) : "—"}${state && state !== STATE.RUNNING ? ` · session ${state}` : ""}`;
  }

  // -- events --------------------------------------------------------------------------------
  function onSessionEvent(event) {
    if (event.session_id && event.session_id !== view.id) return;
    const data = event.data || {};
    switch (event.type) {
      case EVENT.GAME_MOVE: onMove(data); return; // not numbered, not logged
      case EVENT.GAME_FINISHED:
        view.games.push({
          number: data.number, result: data.result, ts: Date.parse(event.ts) || Date.now(),
          duration: data.duration_s, runningSince: view.runningSince,
        });
        view.lastGame = { ...data, ts: event.ts };
        view.actorGames.set(data.actor ?? 0, (view.actorGames.get(data.actor ?? 0) || 0) + 1);
        if (typeof data.generation_lag === "number") {
          view.lags.push({ actor: data.actor ?? 0, lag: data.generation_lag });
          if (view.lags.length > LAG_WINDOW) view.lags.shift();
        }
        // game.move names a game by its start number, which is unique per actor only
        if ((data.started ?? data.number) === view.featured.game && (data.actor ?? 0) === view.featured.actor) {
          $("featured-label").textContent = `game #${data.number} · ${data.result} · ${data.termination}`;
        }
        renderLastGameSoon();
        break;
      case EVENT.LEARNING_STEP:
        view.losses.push({ step: data.step, policy: data.policy_loss, value: data.value_loss, total: data.total_loss });
        break;
      case EVENT.CHECKPOINT_SAVED:
        view.generationGames.set(data.generation, data.games);
        break;
      case EVENT.EVALUATION_FINISHED:
        view.evaluations.push(data);
        if (data.ratings && typeof data.ratings === "object") view.ratings = data.ratings;
        if (!view.ratingsLoaded) renderRatingsFromEvent();
        loadRatingsSoon();
        refreshSoon();
        break;
      case EVENT.METRICS_SNAPSHOT:
        view.snapshots.push({
          ts: Date.parse(event.ts) || Date.now(), sps: data.simulations_per_second, buffer: data.buffer_size, rss: data.rss_mb,
        });
        noteStats(data, Date.parse(event.ts));
        break;
      case EVENT.SESSION_STATE:
        if (data.actor_replaced) { view.replacements += 1; break; } // the session's state is unchanged
        if (data.state === STATE.RUNNING) view.runningSince = Date.parse(event.ts) || Date.now();
        refreshSoon();
        break;
      default:
        break;
    }
    addLogRow(event);
    renderChartsSoon();
    renderHeadSoon();
  }

  // -- featured board --------------------------------------------------------------------------
  function boardSrc(fen, lastmove) {
    const params = new URLSearchParams({ fen, size: "360" });
    if (lastmove) params.set("lastmove", lastmove);
    return `dashboard/board.svg?${params}`;
  }

  function onMove(data) {
    // The feed skips plies to stay at a few moves a second: number every move whose
    // predecessor is not shown, and mark the gaps.
    if (typeof data.fen !== "string") return;
    const list = $("featured-moves");
    const actor = data.actor ?? 0;
    if (view.featured.game !== data.game || view.featured.actor !== actor) {
      view.featured = { game: data.game, actor, moves: [], ply: 0 };
      clear(list);
    }
    const fields = data.fen.split(" ");
    const whiteMoved = fields[1] === "b";
    const fullmove = parseInt(fields[5], 10) || 1;
    const number = whiteMoved ? fullmove : fullmove - 1;
    const ply = Number.isInteger(data.ply) ? data.ply : view.featured.ply + 1;
    const previous = list.querySelector(".last");
    if (previous) previous.classList.remove("last");
    const san = data.san || data.uci || "?";
    const follows = view.featured.ply > 0 && ply === view.featured.ply + 1;
    if (view.featured.ply > 0 && !follows) list.append(h("li", { class: "gap", title: "plies not shown" }, "…"));
    let label = null;
    if (whiteMoved) label = `${number}.`;
    else if (!follows) label = `${number}…`;
    list.append(h("li", { "data-ply": ply }, label ? h("span", { class: "no" }, label) : null, h("span", { class: "last" }, san)));
    while (list.children.length > 400) list.removeChild(list.firstChild);
    view.featured.moves.push(san);
    view.featured.ply = ply;
    list.scrollTop = list.scrollHeight;
    view.lastMoveAt = Date.now();
    view.boardUpdates += 1;
    const board = $("board");
    board.src = boardSrc(data.fen, data.uci);
    board.alt = `Game ${data.game} after ${number}${whiteMoved ? "." : "…"} ${san}`;
    $("featured-label").textContent = `game #${data.game}${actor ? ` · actor ${actor}` : ""} · ply ${ply} · live`;
  }

  // -- last finished game ------------------------------------------------------------------
  function kv(label, value) { return h("div", { class: "kv" }, h("span", {}, label), h("span", {}, value)); }

  function renderLastGame() {
    const box = $("last-game");
    const links = $("last-game-links");
    const pgn = $("last-pgn");
    clear(box); clear(links);
    const g = view.lastGame;
    if (!g) {
      box.append(h("p", { class: "empty" }, "No finished game yet."));
      pgn.hidden = true;
      return;
    }
    box.setAttribute("data-game", String(g.number));
    box.append(
      h("div", { class: "kv" }, h("span", {}, `game #${g.number}`), h("span", { class: "result" }, g.result)),
      kv("termination", `${g.termination}${g.adjudicated ? " (adjudicated)" : ""}`),
      kv("plies", fmtInt(g.plies)),
      kv("duration", `${fmt(g.duration_s, 1)} s`),
      kv("simulations", fmtInt(g.simulations)),
      kv("finished", timeOf(g.ts)),
    );
    if (g.game_id !== undefined && g.game_id !== null) {
      links.append(h("a", { href: `v1/games/${enc(g.game_id)}.pgn`, download: "" }, "PGN"));
    }
    links.append(h("a", { href: `v1/sessions/${enc(view.id)}/games.pgn`, download: "" }, "all games"));
    pgn.textContent = g.pgn || (Array.isArray(g.moves) ? g.moves.join(" ") : "");
    pgn.hidden = !pgn.textContent;
  }
  const renderLastGameSoon = throttle(renderLastGame, 200);

  // -- rating list -------------------------------------------------------------------------
  function renderRatings(rows, meta) {
    const body = document.querySelector("#ratings tbody");
    clear(body);
    $("ratings-empty").hidden = rows.length > 0;
    $("ratings-meta").textContent = meta || "";
    const sorted = [...rows].sort((a, b) => b.rating - a.rating);
    for (const r of sorted) {
      const interval = r.low !== null && r.low !== undefined ? `${Math.round(r.low)} – ${Math.round(r.high)}` : "—";
      body.append(h("tr", { "data-player": r.player },
        h("td", {}, h("code", {}, r.player)),
        h("td", { class: "num" }, fmtInt(r.rating)),
        h("td", { class: "num muted" }, interval),
        h("td", { class: "num" }, r.games === undefined ? "—" : fmtInt(r.games))));
    }
  }

  function renderRatingsFromEvent() {
    if (!view.ratings) { renderRatings([], ""); return; }
    const rows = Object.entries(view.ratings).map(([player, r]) => ({ player, rating: r.rating, low: r.low, high: r.high }));
    renderRatings(rows, "from the live feed");
  }

  async function loadRatings() {
    const id = view.id;
    if (!id) return;
    try {
      const page = await api(`v1/sessions/${enc(id)}/evaluations`);
      if (id !== view.id) return;
      if (page.ratings && page.ratings.length) {
        view.ratingsLoaded = true;
        renderRatings(page.ratings, `${page.items.length} match${page.items.length === 1 ? "" : "es"} · gen0 anchored`);
      }
    } catch (_) { /* the live feed's ratings stay */ }
  }
  const loadRatingsSoon = throttle(loadRatings, 1500);

  // -- event log ---------------------------------------------------------------------------
  const LOG_TYPES = [EVENT.GAME_FINISHED, EVENT.LEARNING_STEP, EVENT.CHECKPOINT_SAVED, EVENT.EVALUATION_FINISHED,
    EVENT.SESSION_STATE, EVENT.METRICS_SNAPSHOT, EVENT.ALERT_RAISED];
  const logHidden = new Set([EVENT.METRICS_SNAPSHOT]);

  function setupLogFilters() {
    const box = $("log-filters");
    for (const type of LOG_TYPES) {
      const chip = h("button", {
        type: "button", class: `chip ${logHidden.has(type) ? "" : "on"}`, "data-type": type,
        title: `show/hide ${type} events`,
      }, type.split(".")[0]);
      chip.addEventListener("click", () => {
        if (logHidden.has(type)) logHidden.delete(type); else logHidden.add(type);
        chip.classList.toggle("on", !logHidden.has(type));
        for (const row of $("log").children) row.hidden = logHidden.has(row.dataset.type);
      });
      box.append(chip);
    }
  }

  function summary(event) {
    const d = event.data || {};
    switch (event.type) {
      case EVENT.SESSION_STATE: {
        if (d.actor_replaced) return `actor ${d.actor} died (exit code ${d.exitcode ?? "—"}): actor ${d.replacement} took its place`;
        const extra = d.failure_reason || d.stop_reason;
        return `→ ${d.state}${extra ? ` (${extra})` : ""}`;
      }
      case EVENT.GAME_FINISHED:
        return `#${d.number} ${d.result} · ${d.termination}${d.adjudicated ? " (adjudicated)" : ""} · ${d.plies} plies · ${fmt(d.duration_s, 1)} s`
          + `${d.actor ? ` · actor ${d.actor}` : ""}${d.generation_lag ? ` · lag ${d.generation_lag}` : ""}`;
      case EVENT.LEARNING_STEP:
        return `step ${d.step} · policy ${fmt(d.policy_loss, 3)} · value ${fmt(d.value_loss, 3)} · total ${fmt(d.total_loss, 3)} · buffer ${fmtInt(d.buffer_size)}`;
      case EVENT.CHECKPOINT_SAVED:
        return `generation ${d.generation} after ${fmtInt(d.games)} games`;
      case EVENT.EVALUATION_FINISHED: {
        const ci = d.elo_low !== null && d.elo_low !== undefined ? ` [${Math.round(d.elo_low)}, ${Math.round(d.elo_high)}]` : "";
        const sprt = d.sprt && d.sprt.state ? ` · SPRT ${d.sprt.state}` : "";
        return `gen ${d.generation} vs ${d.opponent}: +${d.wins} =${d.draws} −${d.losses} · Elo ${fmtInt(d.elo)}${ci}${sprt}`;
      }
      case EVENT.METRICS_SNAPSHOT:
        return `${fmtInt(d.simulations_per_second)} sims/s`
          + `${typeof d.learner_steps_per_second === "number" ? ` · ${fmt(d.learner_steps_per_second, 2)} steps/s` : ""}`
          + ` · buffer ${fmtInt(d.buffer_size)} · RSS ${fmtInt(d.rss_mb)} MB`;
      case EVENT.ALERT_RAISED:
        return `[${d.severity || "alert"}] ${d.name || ""}: ${d.message || ""}`;
      default:
        return JSON.stringify(d).slice(0, 200);
    }
  }

  function addLogRow(event) {
    if (typeof event.seq === "number") {
      if (view.seqs.has(event.seq)) return;
      view.seqs.add(event.seq);
    }
    view.counts[event.type] = (view.counts[event.type] || 0) + 1;
    const text = summary(event);
    const row = h("li", { "data-seq": event.seq ?? "", "data-type": event.type, title: text },
      h("span", { class: "t" }, timeOf(event.ts)),
      h("span", { class: "seq" }, event.seq ?? ""),
      h("span", { class: "type" }, event.type),
      h("span", { class: "msg" }, text));
    row.hidden = logHidden.has(event.type);
    const log = $("log");
    log.insertBefore(row, log.firstChild);
    while (log.children.length > LOG_LIMIT) log.removeChild(log.lastChild);
  }

  // -- charts ------------------------------------------------------------------------------
  const COLORS = { accent: "#4c9bff", violet: "#a371f7", green: "#3fb950", amber: "#d29922", teal: "#56d4dd", red: "#f85149", muted: "#8b96a5" };
  const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

  function baseLayout(extra) {
    return {
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 11, color: "#b8c2cf" },
      margin: { l: 48, r: 16, t: 8, b: 34 },
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)", font: { size: 10 } },
      hovermode: "x unified",
      hoverlabel: { bgcolor: "#1b2129", bordercolor: "#262d37", font: { color: "#d6dde6" } },
      xaxis: { gridcolor: "#222933", zerolinecolor: "#2b333e", linecolor: "#2b333e", automargin: true },
      yaxis: { gridcolor: "#222933", zerolinecolor: "#2b333e", linecolor: "#2b333e", automargin: true },
      ...extra,
    };
  }

  function emptyNote(text) {
    return [{ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: COLORS.muted, size: 12 } }];
  }

  function plot(id, traces, layout) {
    if (typeof Plotly === "undefined") return;
    const node = $(id);
    Plotly.react(node, traces, layout, PLOT_CONFIG);
  }

  function eloChart() {
    let points = [];
    if (view.ratings) {
      for (const [name, r] of Object.entries(view.ratings)) {
        const m = /^gen(\d+)$/.exec(name);
        if (m) points.push({ generation: Number(m[1]), rating: r.rating, low: r.low, high: r.high });
      }
    } else {
      const byGen = new Map();
      for (const e of view.evaluations) if (e.elo !== null && e.elo !== undefined) byGen.set(e.generation, { generation: e.generation, rating: e.elo, low: e.elo_low, high: e.elo_high });
      points = [...byGen.values()];
    }
    points.sort((a, b) => a.generation - b.generation);
    const x = points.map((p) => p.generation);
    const games = points.map((p) => view.generationGames.get(p.generation) ?? null);
    const traces = [
      { x, y: points.map((p) => p.high ?? p.rating), mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, name: "high" },
      { x, y: points.map((p) => p.low ?? p.rating), mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(76,155,255,0.18)", name: "95% interval", hoverinfo: "skip" },
      {
        x, y: points.map((p) => p.rating), mode: "lines+markers", name: "checkpoint", line: { color: COLORS.accent, width: 2 },
        marker: { size: 6 }, customdata: points.map((p, i) => [p.low, p.high, games[i]]),
        hovertemplate: "gen %{x}: %{y:.0f} [%{customdata[0]:.0f}, %{customdata[1]:.0f}]<extra></extra>",
      },
    ];
    if (view.ratings && x.length) {
      const span = [Math.min(...x), Math.max(...x)];
      const anchorColors = [COLORS.amber, COLORS.green, COLORS.red, COLORS.violet];
      let i = 0;
      for (const [name, r] of Object.entries(view.ratings)) {
        if (/^gen\d+$/.test(name)) continue;
        traces.push({
          x: span, y: [r.rating, r.rating], mode: "lines", name, line: { color: anchorColors[i++ % anchorColors.length], width: 1, dash: "dot" },
          hovertemplate: `${name}: %{y:.0f}<extra></extra>`,
        });
      }
    }
    plot("chart-elo", traces, baseLayout({
      xaxis: { ...baseLayout().xaxis, title: { text: "generation", standoff: 4 }, dtick: x.length < 12 ? 1 : undefined },
      yaxis: { ...baseLayout().yaxis, title: { text: "Elo", standoff: 4 } },
      annotations: x.length ? [] : emptyNote("waiting for the first evaluation"),
    }));
  }

  function lossChart() {
    const x = view.losses.map((l) => l.step);
    const traces = [
      { x, y: view.losses.map((l) => l.total), name: "total", mode: "lines", line: { color: COLORS.muted, width: 1.5 } },
      { x, y: view.losses.map((l) => l.policy), name: "policy", mode: "lines", line: { color: COLORS.accent, width: 2 } },
      { x, y: view.losses.map((l) => l.value), name: "value (right)", mode: "lines", yaxis: "y2", line: { color: COLORS.violet, width: 2 } },
    ];
    plot("chart-loss", traces, baseLayout({
      xaxis: { ...baseLayout().xaxis, title: { text: "training step", standoff: 4 } },
      yaxis: { ...baseLayout().yaxis, title: { text: "policy / total", standoff: 4 } },
      yaxis2: { overlaying: "y", side: "right", showgrid: false, zeroline: false, color: COLORS.violet, automargin: true },
      margin: { l: 48, r: 40, t: 8, b: 34 },
      annotations: x.length ? [] : emptyNote("waiting for the first learning step"),
    }));
  }

  function rateChart() {
    // games/min over a trailing window at each finished game (shorter at the session's start)
    // games/min at each finished game: the games of the trailing minute over the time they
    // had (a minute, or less since the session last started running)
    const x = [];
    const y = [];
    let lo = 0;
    const games = view.games;
    for (let i = 0; i < games.length; i++) {
      const t = games[i].ts;
      while (t - games[lo].ts >= RATE_WINDOW_S * 1000) lo += 1;
      const since = games[i].runningSince ?? games[0].ts - 1000 * (games[0].duration || 1);
      const span = Math.min(RATE_WINDOW_S * 1000, t - since);
      if (span >= 1000) { x.push(new Date(t)); y.push(((i - lo + 1) * 60000) / span); }
    }
    const snaps = view.snapshots.filter((s) => s.sps !== undefined && s.sps !== null);
    const traces = [
      { x, y, name: "games/min", mode: "lines", line: { color: COLORS.green, width: 2 } },
      { x: snaps.map((s) => new Date(s.ts)), y: snaps.map((s) => s.sps), name: "simulations/s (right)", mode: "lines", yaxis: "y2", line: { color: COLORS.teal, width: 1, dash: "dot" } },
    ];
    plot("chart-rate", traces, baseLayout({
      xaxis: { ...baseLayout().xaxis, type: "date", tickformat: "%H:%M:%S" },
      yaxis: { ...baseLayout().yaxis, title: { text: "games/min", standoff: 4 }, rangemode: "tozero" },
      yaxis2: { overlaying: "y", side: "right", showgrid: false, zeroline: false, color: COLORS.teal, rangemode: "tozero", automargin: true },
      margin: { l: 48, r: 44, t: 8, b: 34 },
      annotations: x.length || snaps.length ? [] : emptyNote("waiting for games"),
    }));
  }

  function wdlChart() {
    const x = [];
    const white = [];
    const draw = [];
    const black = [];
    let w = 0; let d = 0; let b = 0;
    const games = [...view.games].sort((p, q) => p.number - q.number);
    for (const g of games) {
      if (g.result === "1-0") w += 1; else if (g.result === "0-1") b += 1; else d += 1;
      x.push(g.number); white.push(w); draw.push(d); black.push(b);
    }
    const trace = (name, y, color) => ({
      x, y, name, mode: "lines", stackgroup: "wdl", groupnorm: "percent", line: { width: 0.5, color }, fillcolor: color,
      customdata: y, hovertemplate: `${name}: %{customdata} (%{y:.0f}%)<extra></extra>`,
    });
    plot("chart-wdl", [
      trace("white wins", white, "rgba(214,221,230,0.75)"),
      trace("draws", draw, "rgba(139,150,165,0.55)"),
      trace("black wins", black, "rgba(76,155,255,0.7)"),
    ], baseLayout({
      xaxis: { ...baseLayout().xaxis, title: { text: "game", standoff: 4 } },
      yaxis: { ...baseLayout().yaxis, ticksuffix: "%", range: [0, 100] },
      legend: { ...baseLayout().legend, traceorder: "normal" },
      annotations: x.length ? [] : emptyNote("waiting for games"),
    }));
  }

  function renderCharts() {
    if (!view.id) return;
    eloChart();
    lossChart();
    rateChart();
    wdlChart();
  }
  const renderChartsSoon = throttle(renderCharts, 400);
  const renderHeadSoon = throttle(renderDetailHead, 300);

  // ---------------------------------------------------------------------------------------
  // all sessions' tail: keeps the table's states and game counts current between polls
  function onAnyEvent(event) {
    const id = event.session_id;
    if (!id) return;
    const listed = table.items.find((s) => s.id === id);
    if (!listed) { if (event.type === EVENT.SESSION_STATE) refreshSoon(); return; }
    if (event.type === EVENT.SESSION_STATE && event.data && event.data.state) {
      listed.state = event.data.state;
      refreshSoon();
    } else if (event.type === EVENT.GAME_FINISHED && event.data && typeof event.data.number === "number") {
      listed.games_done = Math.max(listed.games_done, event.data.number);
    } else if (event.type === EVENT.EVALUATION_FINISHED) {
      refreshSoon();
      return;
    } else {
      return;
    }
    renderSessionsSoon();
  }
  const renderSessionsSoon = throttle(renderSessions, 500);

  // ---------------------------------------------------------------------------------------
  // start
  function setupKeyForm() {
    const form = $("key-form");
    if (keysOn) showKeyForm(currentKey() ? "key saved" : "this server needs an API key");
    $("api-key").value = currentKey();
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      setKey($("api-key").value.trim());
      setKeyNote(currentKey() ? "key saved" : "no key");
      if (view.feed) view.feed.kick();
      if (allFeed) allFeed.kick();
      refreshSessions();
    });
    $("key-forget").addEventListener("click", () => {
      setKey("");
      $("api-key").value = "";
      setKeyNote("key forgotten");
    });
  }

  let allFeed = null;

  function init() {
    const version = document.querySelector('meta[name="cp-version"]')?.content || "";
    $("version").textContent = version && !version.startsWith("{{") ? `v${version}` : "";
    setupKeyForm();
    setupCreateForm();
    setupLogFilters();
    checkHealth();
    setInterval(checkHealth, HEALTH_MS);
    setInterval(() => { if (!document.hidden) refreshSessions(); }, POLL_MS);
    allFeed = new LiveFeed("all", "v1/live", { resumable: false, onEvent: onAnyEvent, onOpen: () => refreshSoon() });
    window.cpDashboard.allFeed = allFeed;
    allFeed.start();
    const m = /session=([0-9a-f]{32})/.exec(location.hash);
    refreshSessions().then(() => {
      if (m) select(m[1]);
      else if (table.items.length) {
        const first = table.items.find((s) => ACTIVE.has(s.state)) || table.items[0];
        select(first.id);
      }
    });
  }

  window.cpDashboard = { view, table, select, refresh: refreshSessions, feed: null, allFeed: null };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
