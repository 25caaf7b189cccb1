// The supervision map: sign-in, the map with filters and a flag list, a flag's panel, check and
// screening tools, and an overview of statistics. A client of the public API; no business rules here.
import "./style.css";
import * as api from "./api.js";
import { CheckTool } from "./check.js";
import { $, $$, esc } from "./dom.js";
import { date, getLang, num, setLang, t, word } from "./i18n.js";
import { FlagPanel } from "./panel.js";
import * as urlState from "./state.js";

const root = document.getElementById("app");
// the map's code (MapLibre: most of the app's bytes) loads while the page asks the API who the
// token is and for the first list page
let mapModule = null;
const loadMap = () => (mapModule ??= import("./map.js"));
setLang(getLang());
document.title = `redline · ${t("app")}`;

function signInForm(message = "") {
  root.innerHTML = `<form class="signin"><h1>redline</h1><p>${t("app")}</p>
    <label>${t("token")}<input type="password" name="token" autocomplete="off" required placeholder="rl_…"></label>
    <small class="muted">${t("token_hint")}</small><div class="error">${esc(message)}</div>
    <div class="tool-row"><button type="submit">${t("signin")}</button>
    <button type="button" class="lang">${t("lang")}</button></div></form>`;
  $(".lang").onclick = switchLang;
  $("form.signin").onsubmit = (e) => {
    e.preventDefault();
    api.setToken(new FormData(e.target).get("token").trim());
    start();
  };
}

function switchLang() {
  setLang(getLang() === "zh-CN" ? "en" : "zh-CN");
  location.reload();  // the view, filters and session survive: they are in the URL and the session
}

async function start() {
  const fromLink = urlState.takeTokenFromFragment();
  if (fromLink) api.setToken(fromLink);
  if (!api.token()) return signInForm();
  // the first page of the list is asked for at once, beside who the token is (it decides
  // where the map opens)
  loadMap();
  const firstPage = listPage(urlState.apiParams(urlState.read().filters));
  firstPage.catch(() => {});  // shown by the list
  let me, config;
  try {
    [me, config] = await Promise.all([api.get("/me"), api.get("/app/config.json")]);
  } catch (e) {
    api.setToken(null);
    return signInForm(e.message);
  }
  await shell(me, config, firstPage);
}

/** One page of the flag list for the filters (the API's answer; at most 200 flags). */
function listPage(params) {
  const p = new URLSearchParams(params);
  p.set("limit", "200");
  return api.get("/collections/flags/items", p);
}

async function shell(me, config, firstPage) {
  const { bboxOf, FlagMap, LAYERS, LAYERS_OFF, legend } = await loadMap();
  const state = urlState.read();
  const sharedView = Boolean(state.camera);  // a shared link keeps its view; otherwise fit to the flags
  const multi = (k) => `<fieldset class="multi" data-key="${k}"><legend>${t(k)}</legend>${urlState.VOCAB[k].map((v) =>
    `<label><input type="checkbox" value="${v}" ${state.filters[k].includes(v) ? "checked" : ""}>${esc(word(k, v))}</label>`).join("")}</fieldset>`;
  root.innerHTML = `
    <header class="top"><h1>redline <small>${t("app")}</small></h1>
      <nav><button type="button" data-view="map">${t("map")}</button><button type="button" data-view="overview">${t("overview")}</button></nav>
      <div class="who">${esc(me.name)} · ${esc(word("role", me.role))}${me.jurisdiction.length ? ` · ${t("jurisdiction")} ${esc(me.jurisdiction.join(", "))}` : ""}
        <button type="button" class="lang">${t("lang")}</button><button type="button" class="signout">${t("signout")}</button></div></header>
    <main>
      <aside class="side">
        <details open class="filters"><summary>${t("filters")}</summary>
          ${multi("status")}${multi("severity")}${multi("activity")}
          <label>${t("admin")}<select class="admin"><option value="">${t("any")}</option></select></label>
          <label class="months">${t("month")} <output></output><input type="range" class="month" min="0" max="0" value="0"></label>
          <div class="dates"><label>${t("date_from")}<input type="date" class="from" value="${esc(state.filters.from)}"></label>
            <label>${t("date_to")}<input type="date" class="to" value="${esc(state.filters.to)}"></label></div>
          <div class="tool-row"><button type="button" class="reset">${t("reset")}</button></div></details>
        <details open class="layers"><summary>${t("layers")}</summary>${LAYERS.map((l) =>
          `<label><input type="checkbox" data-layer="${l}" ${LAYERS_OFF.includes(l) ? "" : "checked"}>${t(`layer_${l}`)}</label>`).join("")}
          <div class="legend">${legend()}</div></details>
        <details class="checks"><summary>${t("check")} / ${t("screening")}</summary><div class="check-tool"></div></details>
        <details open class="list"><summary>${t("list")} <span class="count"></span></summary><ol class="flag-list"></ol></details>
      </aside>
      <section class="map-view"><div id="map"></div><div class="notice" hidden></div><aside class="panel" hidden></aside></section>
      <section class="overview-view" hidden></section>
    </main>`;
  $(".lang").onclick = switchLang;
  $(".signout").onclick = () => { api.setToken(null); location.reload(); };

  const panel = new FlagPanel($(".panel"), {
    me,
    onChanged: () => refresh({ reload: true }),  // a flag moved: its tiles changed
    onClose: () => { panel.close(); state.flag = null; fm.select(null); urlState.write(state); },
    onZoom: (feature) => fm.showFeature(feature),
  });
  // from the map: the flag is in view already; from a list or a link: the map goes to it
  const openFlag = (id, zoom = true) => { state.flag = id; urlState.write(state); fm.select(id); panel.open(id, { zoom }); };
  // the map starts at once; without a shared view it opens on the flags of the first list page
  // (its tiles are asked for only then: none for a view that is left at once)
  let noticeTimer = null;
  let listSeq = 0;
  const firstList = loadList(firstPage);
  const fm = new FlagMap($("#map"), {
    config, camera: state.camera, bounds: sharedView ? null : firstList.then((page) => bboxOf(page.features)),
    filters: state.filters, onFlagClick: (id) => openFlag(id, false),
    onMove: (camera) => { state.camera = camera; urlState.write(state); },
    // a failed tile says less than the API's problem document: it never hides one
    onError: (message) => { if ($(".notice").hidden) notice(`${t("error")}: ${message}`); },
  });
  function notice(message) {
    const el = $(".notice");
    el.textContent = message;
    el.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { el.hidden = true; }, 8000);
  }
  const tool = new CheckTool($(".check-tool"), fm, { onFlag: openFlag });
  tool.render();
  // the overview's code (and its chart library) is loaded when it is first shown
  let overviewView = null;
  const overview = () => (overviewView ??= import("./overview.js").then(({ Overview }) => new Overview($(".overview-view"))));

  // filters -> URL -> map, list and overview
  const readFilters = () => {
    for (const fs of $$("fieldset.multi")) {
      state.filters[fs.dataset.key] = $$("input:checked", fs).map((i) => i.value);
    }
    const admin = $("select.admin").value;
    state.filters.admin = admin ? [admin] : [];
    state.filters.from = $("input.from").value;
    state.filters.to = $("input.to").value;
  };
  // a filter change: the map redraws at once on the client (the tiles carry the filtered
  // fields); the list (and the overview) ask the API, which also enforces the jurisdiction
  async function refresh({ reload = false } = {}) {
    urlState.write(state);
    fm.setFlagFilter(state.filters);
    if (reload) fm.reloadFlags();
    const params = urlState.apiParams(state.filters);
    if (state.view === "overview") overview().then((o) => o.render(params));
    await loadList(listPage(params));
  }
  async function loadList(pending) {
    const ol = $(".flag-list");
    const seq = ++listSeq;  // only the answer to the latest filters is shown
    try {
      const page = await pending;
      if (seq !== listSeq) return page;
      $(".list .count").textContent = `(${t("matched", { n: num(page.numberMatched, 0) })})`;
      ol.innerHTML = page.features.map((f) => {
        const q = f.properties;
        return `<li><a href="#" data-flag="${f.id}"><span class="dot sev-${esc(q.severity)}"></span>#${f.id}
          ${esc(word("activity", q.activity))} · ${esc(q.zone_name || "")} <small>${esc(word("status", q.status))} · ${date(q.last_seen)}</small></a></li>`;
      }).join("");
      for (const a of $$("a[data-flag]", ol)) a.onclick = (e) => { e.preventDefault(); openFlag(Number(a.dataset.flag)); };
      return page;
    } catch (e) {
      if (seq !== listSeq) return { features: [] };
      ol.innerHTML = `<li class="error">${esc(e.message)}</li>`;
      $(".list .count").textContent = "";
      notice(e.message);
      return { features: [] };
    }
  }
  // the time slider: one month at a time (0 = every month), over the months that have flags
  let months = [];
  const slider = $("input.month");
  const showMonth = () => { $(".months output").textContent = slider.value === "0" ? t("all_months") : months[slider.value - 1]; };
  fm.firstRender.then(() => api.get("/stats", "group_by=month")).then(({ groups }) => {
    months = groups.map((g) => g.month).filter(Boolean).sort();
    slider.max = String(months.length);
    const i = months.findIndex((m) => state.filters.from === `${m}-01` && state.filters.to === monthEnd(m));
    slider.value = String(i + 1);
    showMonth();
  }).catch(() => {});
  slider.addEventListener("input", showMonth);
  slider.addEventListener("change", () => {
    const m = months[slider.value - 1];
    $("input.from").value = m ? `${m}-01` : "";
    $("input.to").value = m ? monthEnd(m) : "";
  });
  for (const input of $$(".filters input, .filters select")) {
    input.addEventListener("change", () => { readFilters(); refresh(); });
  }
  $(".filters .reset").onclick = () => {
    for (const i of $$(".filters input[type=checkbox]")) i.checked = false;
    $("select.admin").value = "";
    $("input.from").value = "";
    $("input.to").value = "";
    readFilters();
    refresh();
  };
  for (const cb of $$("[data-layer]")) cb.onchange = () => fm.ready.then(() => fm.setVisible(cb.dataset.layer, cb.checked));

  // admin units the caller may see, with their names (statistics are scoped by the API)
  fm.firstRender.then(() => api.get("/stats", "group_by=region")).then(({ groups }) => {
    const sel = $("select.admin");
    for (const g of groups) {
      const o = new Option(`${g.admin_name || ""} ${g.admin_code}`, g.admin_code);
      o.selected = state.filters.admin.includes(g.admin_code);
      sel.add(o);
    }
  }).catch(() => {});

  function showView(view) {
    state.view = view;
    $(".map-view").hidden = view !== "map";
    $(".overview-view").hidden = view !== "overview";
    $(".side .layers").hidden = $(".side .checks").hidden = $(".side .list").hidden = view !== "map";
    for (const b of $$("nav [data-view]")) b.classList.toggle("active", b.dataset.view === view);
    urlState.write(state);
    if (view === "overview") overview().then((o) => o.render(urlState.apiParams(state.filters)));
    else fm.map.resize();
  }
  for (const b of $$("nav [data-view]")) b.onclick = () => showView(b.dataset.view);

  window.redline = { map: fm.map, flagMap: fm, state, me, config, refresh, openFlag };
  showView(state.view);
  window.redline.ready = Promise.all([fm.ready, firstList]);
  if (state.flag) openFlag(state.flag, !sharedView);
}

function monthEnd(m) {
  const [y, mo] = m.split("-").map(Number);
  return `${m}-${String(new Date(Date.UTC(y, mo, 0)).getUTCDate()).padStart(2, "0")}`;
}

start();
