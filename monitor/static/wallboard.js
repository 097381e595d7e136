/* wardwatch status wallboard: vanilla JS, no build step, no external assets.
 *
 * Data: GET /api/v1/wallboard (every unit's summary), GET /api/v1/units/{code} (drill-down),
 * live updates from the server-sent events of /api/v1/events ("units": changed units' summaries),
 * a full refresh every FULL_REFRESH_MS, and polling every POLL_MS while the event stream is down.
 */
"use strict";

(function () {
  const FULL_REFRESH_MS = 30000;
  const POLL_MS = 5000;
  const ALERTS_SHOWN = 8;
  const RANK = { down: 5, unreachable: 4, degraded: 3, unknown: 2, up: 1 };
  const ICON = { up: "✓", down: "✕", unreachable: "⊘", degraded: "◐", unknown: "?" };
  const SERVICE_ORDER = ["link", "vc_gov", "vc_party", "portal", "email", "certs", "procedures"];

  const TEXT = {
    vi: {
      title: "Trạng thái đơn vị", skip: "Đến danh sách đơn vị", units: "Đơn vị", search: "Tìm",
      searchHint: "tên hoặc mã", service: "Dịch vụ", state: "Trạng thái", sort: "Sắp xếp",
      all: "Tất cả", sortCode: "Theo mã", sortWorst: "Sự cố trước", noMatch: "Không có đơn vị phù hợp",
      alerts: "Cảnh báo đang mở", noAlerts: "Không có cảnh báo", certs: "Chứng thư sắp hết hạn",
      noCerts: "Chưa có dữ liệu chứng thư", days: "ngày", close: "Đóng", live: "Trực tiếp",
      polling: "Đang hỏi lại định kỳ", updated: "Cập nhật", targets: "Điểm kiểm tra", history: "Lịch sử gần đây",
      noHistory: "Chưa có thay đổi trạng thái", since: "từ", reason: "Lý do", merged: "Hợp nhất từ",
      probe: "Kiểu", target: "Địa chỉ", at: "Lúc", change: "Thay đổi", acked: "đã xác nhận", loading: "Đang tải…",
      error: "Không tải được dữ liệu", servicesH: "Dịch vụ", unitsCount: "đơn vị", code: "Mã",
      up: "Hoạt động", down: "Ngừng", unreachable: "Mất kết nối", degraded: "Suy giảm", unknown: "Chưa rõ",
      link: "Đường truyền", vc_gov: "Phòng họp chính quyền", vc_party: "Phòng họp Đảng", portal: "Cổng TTĐT",
      email: "Thư điện tử", certs_svc: "Chứng thư số", procedures: "Dịch vụ công",
      min: "phút", hour: "giờ", day: "ngày", sec: "giây", more: "cảnh báo khác",
    },
    en: {
      title: "Unit status", skip: "Skip to the units", units: "Units", search: "Search",
      searchHint: "name or code", service: "Service", state: "State", sort: "Sort",
      all: "All", sortCode: "By code", sortWorst: "Problems first", noMatch: "No unit matches",
      alerts: "Active alerts", noAlerts: "No active alerts", certs: "Certificates expiring soonest",
      noCerts: "No certificate data yet", days: "days", close: "Close", live: "Live",
      polling: "Polling", updated: "Updated", targets: "Targets", history: "Recent history",
      noHistory: "No state changes yet", since: "since", reason: "Reason", merged: "Merged from",
      probe: "Probe", target: "Target", at: "At", change: "Change", acked: "acknowledged", loading: "Loading…",
      error: "Cannot load the data", servicesH: "Services", unitsCount: "units", code: "Code",
      up: "Up", down: "Down", unreachable: "Unreachable", degraded: "Degraded", unknown: "Unknown",
      link: "Link", vc_gov: "Government VC room", vc_party: "Party VC room", portal: "Portal",
      email: "Email", certs_svc: "Certificates", procedures: "Public services",
      min: "min", hour: "h", day: "d", sec: "s", more: "more",
    },
  };

  const $ = (id) => document.getElementById(id);
  const store = window.localStorage;
  let lang = "vi";
  try { lang = store.getItem("wardwatch.lang") === "en" ? "en" : "vi"; } catch (e) { lang = "vi"; }

  const board = { units: new Map(), order: [], services: [], certificates: [], alerts: null, totals: {} };
  const tiles = new Map(); // code -> <li>
  let openCode = null;
  let pollTimer = null;
  let source = null;

  function t(key) { return TEXT[lang][key] || TEXT.vi[key] || key; }
  function svcName(s) { return s === "certs" ? t("certs_svc") : t(s); }

  /* Search folding: NFD, strip combining marks, đ -> d, lower case ("vung tau" finds "Phường Vũng Tàu"). */
  function fold(s) {
    return String(s).normalize("NFD").replace(/[\u0300-\u036f]/g, "")
      .replace(/đ/g, "d").replace(/Đ/g, "D").toLowerCase().replace(/\s+/g, " ").trim();
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function duration(fromIso) {
    if (!fromIso) return "";
    let s = Math.max(0, (Date.now() - Date.parse(fromIso)) / 1000);
    if (s < 60) return `${Math.floor(s)} ${t("sec")}`;
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60);
    if (d) return `${d} ${t("day")} ${h} ${t("hour")}`;
    if (h) return `${h} ${t("hour")} ${m} ${t("min")}`;
    return `${m} ${t("min")}`;
  }

  function when(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(lang === "vi" ? "vi-VN" : "en-GB");
  }

  function stateOf(u) {
    const svc = $("service").value;
    return svc ? (u.services[svc] || null) : u.worst;
  }

  // -- the grid --------------------------------------------------------------------------------

  function tileSignature(u, st) {
    return JSON.stringify([lang, st, u.since, u.services, u.name]);
  }

  function fillTile(li, u, st) {
    const sig = tileSignature(u, st);
    if (li.dataset.sig === sig) return;
    li.dataset.sig = sig;
    const bad = Object.entries(u.services).filter(([, s]) => s !== "up")
      .sort((a, b) => RANK[b[1]] - RANK[a[1]]);
    const label = `${u.name} (${u.code}): ${t(st)}` +
      (bad.length ? ` — ${bad.map(([s, v]) => `${svcName(s)} ${t(v)}`).join(", ")}` : "");
    // The button itself is kept (updated in place), so keyboard focus survives live updates.
    let btn = li.firstElementChild;
    if (!btn) {
      btn = el("button", { type: "button", class: "tile", "data-code": String(u.code) });
      li.append(btn);
    }
    btn.setAttribute("aria-label", label);
    btn.title = label;
    btn.replaceChildren(
      el("span", { class: "name", text: u.name }),
      el("span", { class: "meta" },
        el("span", { class: "icon", "aria-hidden": "true", text: ICON[st] }),
        el("span", { class: "word", text: t(st) }),
        el("span", { class: "code", text: String(u.code) })),
      el("span", { class: "svcs", text: bad.slice(0, 3).map(([s, v]) => `${ICON[v]} ${svcName(s)}`).join(" · ") }));
    li.className = `cell s-${st}`;
    li.dataset.state = st;
  }

  function visibleUnits() {
    const q = fold($("q").value);
    const svc = $("service").value;
    const want = $("state").value;
    const out = [];
    for (const code of board.order) {
      const u = board.units.get(code);
      if (!u) continue;
      if (svc && !(svc in u.services)) continue;
      const st = stateOf(u);
      if (want && st !== want) continue;
      if (q && !u.fold.includes(q) && !String(u.code).startsWith(q)) continue;
      out.push([u, st]);
    }
    if ($("sort").value === "worst") out.sort((a, b) => RANK[b[1]] - RANK[a[1]] || a[0].code - b[0].code);
    return out;
  }

  function renderGrid() {
    const grid = $("grid");
    const active = document.activeElement;
    const rows = visibleUnits();
    const wanted = [];
    for (const [u, st] of rows) {
      let li = tiles.get(u.code);
      if (!li) { li = el("li", {}); tiles.set(u.code, li); }
      fillTile(li, u, st);
      wanted.push(li);
    }
    const current = Array.from(grid.children);
    const same = current.length === wanted.length && current.every((c, i) => c === wanted[i]);
    if (!same) {
      grid.replaceChildren(...wanted);
      if (active && grid.contains(active)) active.focus();
    }
    $("empty").hidden = rows.length > 0;
    renderTotals();
  }

  function renderTotals() {
    const box = $("totals");
    const counts = {};
    for (const u of board.units.values()) counts[u.worst] = (counts[u.worst] || 0) + 1;
    box.replaceChildren(...["down", "unreachable", "degraded", "unknown", "up"].filter((s) => counts[s])
      .map((s) => el("button", { type: "button", class: `count s-${s}`, "data-state": s,
        "aria-pressed": $("state").value === s ? "true" : "false" },
      el("span", { "aria-hidden": "true", text: ICON[s] }), ` ${counts[s]} ${t(s)}`)));
  }

  // -- side panels -----------------------------------------------------------------------------

  function renderCerts() {
    const body = $("certs");
    if (!board.certificates.length) {
      body.replaceChildren(el("tr", {}, el("td", { class: "muted", text: t("noCerts") })));
      return;
    }
    body.replaceChildren(...board.certificates.map((c) => {
      const cls = c.days_left < 0 ? "s-down" : c.days_left < 14 ? "s-degraded" : "";
      return el("tr", { class: cls },
        el("td", { class: "days", text: `${Math.round(c.days_left)} ${t("days")}` }),
        el("td", {}, el("button", { type: "button", class: "link", "data-code": String(c.unit_code), text: c.unit }),
          el("div", { class: "muted small", text: c.target })));
    }));
  }

  function renderAlerts(data) {
    const box = $("alerts-box");
    if (!data) { box.hidden = true; return; }
    box.hidden = false;
    const rows = (data.alerts || []).map((a) => a.alert || a);
    const list = $("alerts");
    if (!rows.length) { list.replaceChildren(el("li", { class: "muted", text: t("noAlerts") })); return; }
    const items = rows.slice(0, ALERTS_SHOWN).map((a) => el("li", { class: "alert" },
      el("button", { type: "button", class: "link", "data-code": String(a.unit_code), text: a.unit || a.unit_code }),
      ` ${a.service ? svcName(a.service) : ""} · ${a.kind || ""}`,
      el("div", { class: "muted small", text: `${a.reason || ""} ${t("since")} ${when(a.started_at)}` })));
    if (rows.length > ALERTS_SHOWN) items.push(el("li", { class: "muted", text: `+${rows.length - ALERTS_SHOWN} ${t("more")}` }));
    list.replaceChildren(...items);
  }

  async function loadAlerts() {
    if (!board.alerts) { renderAlerts(null); return; }
    try {
      const r = await fetch(board.alerts, { headers: { Accept: "application/json" } });
      renderAlerts(r.ok ? await r.json() : null);
    } catch (e) { renderAlerts(null); }
  }

  // -- data ------------------------------------------------------------------------------------

  function putUnit(u) {
    u.fold = fold(`${u.name} ${u.type || ""} ${u.code}`);
    board.units.set(u.code, u);
  }

  async function loadBoard() {
    const r = await fetch("/api/v1/wallboard", { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const data = await r.json();
    board.units.clear();
    data.units.forEach(putUnit);
    board.order = data.units.map((u) => u.code);
    board.services = data.services;
    board.certificates = data.certificates;
    board.alerts = data.alerts;
    $("province").textContent = data.province ? `· ${data.province}` : "";
    fillServiceSelect();
    renderGrid();
    renderCerts();
    setUpdated(data.generated_at);
    loadAlerts();
  }

  function setUpdated(iso) {
    $("live").dataset.updated = iso || "";
    renderLive();
  }

  function renderLive() {
    const live = $("live");
    const on = source && source.readyState === 1;
    live.className = `live ${on ? "on" : "off"}`;
    const at = live.dataset.updated ? ` · ${t("updated")} ${new Date(live.dataset.updated)
      .toLocaleTimeString(lang === "vi" ? "vi-VN" : "en-GB")}` : "";
    live.textContent = `${on ? "● " + t("live") : "○ " + t("polling")}${at}`;
  }

  function refresh() {
    return loadBoard().catch(() => { $("live").textContent = t("error"); });
  }

  function startPolling() {
    if (pollTimer === null) pollTimer = setInterval(refresh, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
  }

  function connect() {
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource("/api/v1/events");
    source.addEventListener("open", () => { stopPolling(); refresh(); });
    source.addEventListener("units", (ev) => {
      const data = JSON.parse(ev.data);
      for (const u of data.units) {
        putUnit(u);
        if (!board.order.includes(u.code)) board.order.push(u.code);
      }
      renderGrid();
      setUpdated(new Date().toISOString());
      if (openCode !== null && data.units.some((u) => u.code === openCode)) openUnit(openCode, false);
    });
    source.addEventListener("error", () => {
      renderLive();
      startPolling(); // the browser reconnects by itself; poll meanwhile
    });
  }

  // -- drill-down ------------------------------------------------------------------------------

  function badge(state) {
    return el("span", { class: `badge s-${state}` }, el("span", { "aria-hidden": "true", text: ICON[state] + " " }),
      t(state));
  }

  async function openUnit(code, show = true) {
    openCode = code;
    const dlg = $("unit");
    const u = board.units.get(code);
    $("unit-title").textContent = u ? `${u.name} (${u.code})` : String(code);
    if (show) {
      $("unit-body").replaceChildren(el("p", { text: t("loading") }));
      if (!dlg.open) dlg.showModal();
    }
    let d;
    try {
      const r = await fetch(`/api/v1/units/${code}`, { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      d = await r.json();
    } catch (e) {
      $("unit-body").replaceChildren(el("p", { text: t("error") }));
      return;
    }
    if (openCode !== code) return;
    $("unit-title").textContent = `${d.name} (${d.code})`;
    const parts = [];
    parts.push(el("p", { class: "unit-state" }, badge(d.worst),
      d.since ? ` ${t("since")} ${when(d.since)} (${duration(d.since)})` : "",
      d.type ? el("span", { class: "muted", text: ` · ${d.type}` }) : null));
    if (d.merged_from && d.merged_from.length) {
      parts.push(el("p", { class: "muted", text: `${t("merged")}: ${d.merged_from.map((m) => `${m.name} (${m.code})`)
        .join(", ")}` }));
    }
    parts.push(el("h3", { text: t("servicesH") }));
    parts.push(el("ul", { class: "services" }, ...Object.entries(d.services).map(([s, st]) =>
      el("li", {}, badge(st), " ", svcName(s)))));
    parts.push(el("h3", { text: t("targets") }));
    const head = el("tr", {}, ...[t("state"), t("service"), t("probe"), t("target"), t("reason")]
      .map((h) => el("th", { scope: "col", text: h })));
    const rows = d.targets.map((x) => el("tr", { class: "target-row" },
      el("td", {}, badge(x.state), x.since && x.state !== "up" ? el("div", { class: "muted small",
        text: `${t("since")} ${when(x.since)}` }) : null),
      el("td", { text: svcName(x.service) }),
      el("td", { text: x.probe }),
      el("td", { class: "target", text: x.target }),
      el("td", { text: x.reason ? `${x.reason}${x.message ? ": " + x.message : ""}` : "" })));
    parts.push(el("div", { class: "scroll" }, el("table", { class: "targets" }, el("thead", {}, head),
      el("tbody", {}, ...rows))));
    parts.push(el("h3", { text: t("history") }));
    if (!d.history.length) parts.push(el("p", { class: "muted", text: t("noHistory") }));
    else {
      parts.push(el("ol", { class: "history" }, ...d.history.map((h) => el("li", {},
        el("span", { class: "muted", text: when(h.at) + " " }), `${svcName(h.service)} ${h.probe} `,
        badge(h.old), " → ", badge(h.new), h.reason ? ` ${h.reason}` : "",
        el("div", { class: "muted small target", text: h.target })))));
    }
    $("unit-body").replaceChildren(...parts);
  }

  // -- controls, keyboard ----------------------------------------------------------------------

  function fillSelect(sel, options) {
    const keep = sel.value;
    sel.replaceChildren(...options.map(([v, label]) => el("option", { value: v, text: label })));
    if (options.some(([v]) => v === keep)) sel.value = keep;
  }

  function fillServiceSelect() {
    const svcs = [...board.services].sort((a, b) => SERVICE_ORDER.indexOf(a) - SERVICE_ORDER.indexOf(b));
    fillSelect($("service"), [["", t("all")], ...svcs.map((s) => [s, svcName(s)])]);
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((e) => {
      e.placeholder = t(e.dataset.i18nPlaceholder);
    });
    document.querySelectorAll("[data-i18n-aria]").forEach((e) => {
      e.setAttribute("aria-label", t(e.dataset.i18nAria));
    });
    const other = lang === "vi" ? "en" : "vi";
    $("lang").textContent = other === "en" ? "English" : "Tiếng Việt";
    $("lang").setAttribute("lang", other);
    document.title = `wardwatch · ${t("title")}`;
    fillServiceSelect();
    fillSelect($("state"), [["", t("all")], ...["down", "unreachable", "degraded", "unknown", "up"]
      .map((s) => [s, `${ICON[s]} ${t(s)}`])]);
    fillSelect($("sort"), [["code", t("sortCode")], ["worst", t("sortWorst")]]);
    renderGrid();
    renderCerts();
    renderLive();
    if (openCode !== null && $("unit").open) openUnit(openCode, false);
  }

  function columns(buttons) {
    if (buttons.length < 2) return 1;
    const top = buttons[0].getBoundingClientRect().top;
    const i = buttons.findIndex((b) => b.getBoundingClientRect().top > top + 1);
    return i < 0 ? buttons.length : i;
  }

  function onGridKey(ev) {
    const buttons = Array.from($("grid").querySelectorAll("button.tile"));
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const cols = columns(buttons);
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[ev.key];
    let j = null;
    if (step !== undefined) j = Math.min(buttons.length - 1, Math.max(0, i + step));
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = buttons.length - 1;
    if (j !== null) { ev.preventDefault(); buttons[j].focus(); }
  }

  function init() {
    applyLanguage();
    $("q").addEventListener("input", renderGrid);
    $("service").addEventListener("change", renderGrid);
    $("state").addEventListener("change", renderGrid);
    $("sort").addEventListener("change", renderGrid);
    $("lang").addEventListener("click", () => {
      lang = lang === "vi" ? "en" : "vi";
      try { store.setItem("wardwatch.lang", lang); } catch (e) { /* private mode: not remembered */ }
      applyLanguage();
    });
    $("totals").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-state]");
      if (!b) return;
      $("state").value = $("state").value === b.dataset.state ? "" : b.dataset.state;
      renderGrid();
    });
    document.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-code]");
      if (b) openUnit(Number(b.dataset.code));
    });
    $("grid").addEventListener("keydown", onGridKey);
    $("unit-close").addEventListener("click", () => $("unit").close());
    $("unit").addEventListener("close", () => {
      const code = openCode;
      openCode = null;
      const tile = document.querySelector(`#grid button[data-code="${code}"]`);
      if (tile) tile.focus();
    });
    $("unit").addEventListener("click", (ev) => { if (ev.target === $("unit")) $("unit").close(); });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && document.activeElement !== $("q") && !$("unit").open) { ev.preventDefault(); $("q").focus(); }
    });
    refresh();
    connect();
    setInterval(refresh, FULL_REFRESH_MS);
    setInterval(renderLive, 10000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
