/* wardwatch public status page: per-unit service state from /public/status.json, refreshed every 30 s.
 * Reads nothing else: no internal API, no addresses, no reasons. */
"use strict";

(function () {
  const REFRESH_MS = 30000;
  const ICON = { up: "✓", down: "✕", degraded: "◐", unknown: "?" };
  const SERVICE_ORDER = ["link", "vc_gov", "vc_party", "portal", "email", "certs", "procedures"];
  const TEXT = {
    vi: { title: "Trạng thái dịch vụ", search: "Tìm", unit: "Đơn vị", updated: "Cập nhật lúc", error: "Không tải được dữ liệu",
      up: "Hoạt động", down: "Gián đoạn", degraded: "Suy giảm", unknown: "Chưa rõ",
      link: "Đường truyền", vc_gov: "Phòng họp chính quyền", vc_party: "Phòng họp Đảng", portal: "Cổng TTĐT",
      email: "Thư điện tử", certs: "Chứng thư số", procedures: "Dịch vụ công" },
    en: { title: "Service status", search: "Search", unit: "Unit", updated: "Updated at", error: "Cannot load the data",
      up: "Up", down: "Disrupted", degraded: "Degraded", unknown: "Unknown",
      link: "Link", vc_gov: "Government VC room", vc_party: "Party VC room", portal: "Portal",
      email: "Email", certs: "Certificates", procedures: "Public services" },
  };
  const $ = (id) => document.getElementById(id);
  let lang = "vi";
  try { lang = localStorage.getItem("wardwatch.lang") === "en" ? "en" : "vi"; } catch (e) { lang = "vi"; }
  let data = null;
  const t = (k) => TEXT[lang][k] || k;
  const fold = (s) => String(s).normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/đ/g, "d")
    .replace(/Đ/g, "D").toLowerCase().trim();

  function cell(state) {
    const td = document.createElement("td");
    if (!state) return td;
    const b = document.createElement("span");
    b.className = `badge s-${state}`;
    b.textContent = `${ICON[state]} ${t(state)}`;
    td.append(b);
    return td;
  }

  function render() {
    document.documentElement.lang = lang;
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
    $("lang").textContent = lang === "vi" ? "English" : "Tiếng Việt";
    if (!data) return;
    const services = SERVICE_ORDER.filter((s) => data.units.some((u) => s in u.services));
    const hr = document.createElement("tr");
    for (const h of [t("unit"), ...services.map(t)]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      hr.append(th);
    }
    $("head").replaceChildren(hr);
    const q = fold($("q").value);
    const rows = data.units.filter((u) => !q || fold(`${u.name} ${u.code}`).includes(q)).map((u) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = `${u.name} (${u.code})`;
      tr.append(th, ...services.map((s) => cell(u.services[s])));
      return tr;
    });
    $("rows").replaceChildren(...rows);
    const counts = {};
    for (const u of data.units) counts[u.worst] = (counts[u.worst] || 0) + 1;
    $("totals").textContent = ["down", "degraded", "unknown", "up"].filter((s) => counts[s])
      .map((s) => `${ICON[s]} ${counts[s]} ${t(s)}`).join("   ");
    $("updated").textContent = `${t("updated")} ${new Date(data.generated_at).toLocaleString(lang === "vi" ? "vi-VN" : "en-GB")}`;
  }

  async function load() {
    try {
      const r = await fetch("/public/status.json", { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      data = await r.json();
    } catch (e) {
      $("updated").textContent = t("error");
      return;
    }
    render();
  }

  function init() {
    $("q").addEventListener("input", render);
    $("lang").addEventListener("click", () => {
      lang = lang === "vi" ? "en" : "vi";
      try { localStorage.setItem("wardwatch.lang", lang); } catch (e) { /* not remembered */ }
      render();
    });
    render();
    load();
    setInterval(load, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
