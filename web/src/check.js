// Check and screening from the map: draw a polygon (click to add vertices) or upload a file,
// then show the API's answer. The engine computes everything; this only sends and shows.
import * as api from "./api.js";
import { $, esc, table } from "./dom.js";
import { area, date, pct, t, word } from "./i18n.js";
import { VOCAB } from "./state.js";

export class CheckTool {
  constructor(el, flagMap, { onFlag }) {
    this.el = el;
    this.fm = flagMap;
    this.onFlag = onFlag;
    this.coords = [];
    this.closed = false;
    this.file = null;
  }

  render() {
    this.el.innerHTML = `
      <div class="tool-row"><button type="button" class="draw">${t("draw")}</button>
        <button type="button" class="finish" disabled>${t("finish")}</button>
        <button type="button" class="clear">${t("clear")}</button></div>
      <div class="hint muted" hidden>${t("draw_hint")}</div>
      <label class="file">${t("upload_region")}<input type="file" class="region-file"
        accept=".gpkg,.zip,.kml,.kmz,.geojson,.json"></label>
      <div class="tool-row"><button type="button" class="run-check">${t("run_check")}</button>
        <select class="activity">${VOCAB.activity.map((a) => `<option value="${a}">${esc(word("activity", a))}</option>`).join("")}</select>
        <button type="button" class="run-screening">${t("run_screening")}</button></div>
      <div class="result"></div>`;
    $(".draw", this.el).onclick = () => this.startDrawing();
    $(".finish", this.el).onclick = () => this.finish();
    $(".clear", this.el).onclick = () => this.clear();
    $(".region-file", this.el).onchange = (e) => { this.file = e.target.files[0] || null; if (this.file) this.clearDrawing(); };
    $(".run-check", this.el).onclick = () => this.check();
    $(".run-screening", this.el).onclick = () => this.screen();
  }

  startDrawing() {
    this.clear();
    this.fm.clickHandler = (e) => { this.coords.push(e.lngLat.toArray()); this.update(); };
    this.fm.dblclickHandler = () => this.finish();
    this.fm.map.getCanvas().style.cursor = "crosshair";
    $(".hint", this.el).hidden = false;
    $(".draw", this.el).classList.add("active");
  }

  update() {
    this.fm.setDraft(this.coords, this.closed);
    $(".finish", this.el).disabled = this.closed || this.coords.length < 3;
  }

  stopDrawing() {
    this.fm.clickHandler = null;
    this.fm.dblclickHandler = null;
    this.fm.map.getCanvas().style.cursor = "";
    $(".hint", this.el).hidden = true;
    $(".draw", this.el).classList.remove("active");
  }

  finish() {
    // a double-click also fired two clicks on the same spot: drop repeated vertices
    this.coords = this.coords.filter((c, i, a) => i === 0 || c[0] !== a[i - 1][0] || c[1] !== a[i - 1][1]);
    if (this.coords.length < 3) return;
    this.closed = true;
    this.stopDrawing();
    this.update();
  }

  clearDrawing() {
    this.stopDrawing();
    this.coords = [];
    this.closed = false;
    this.update();
  }

  clear() {
    this.clearDrawing();
    this.fm.showCheck(null);
    this.file = null;
    const input = $(".region-file", this.el);
    if (input) input.value = "";
    $(".result", this.el).innerHTML = "";
  }

  polygon() {
    if (!this.closed) return null;
    return { type: "Polygon", coordinates: [[...this.coords, this.coords[0]]] };
  }

  async run(fn) {
    const out = $(".result", this.el);
    out.innerHTML = `<div class="muted">${t("loading")}</div>`;
    try {
      out.innerHTML = await fn();
    } catch (e) {
      out.innerHTML = `<div class="error">${t("error")}: ${esc(e.message)}</div>`;
    }
    for (const a of out.querySelectorAll("a[data-flag]")) {
      a.onclick = (ev) => { ev.preventDefault(); this.onFlag?.(Number(a.dataset.flag)); };
    }
  }

  check() {
    const poly = this.polygon();
    if (!poly && !this.file) return this.run(async () => `<div class="error">${t("need_polygon")}</div>`);
    return this.run(async () => {
      let body = poly;
      if (!poly) { body = new FormData(); body.append("file", this.file); }
      const a = await api.send("POST", "/checks", body);
      this.fm.showCheck(a, poly ?? a.region);  // an uploaded file: the region as the server read it
      const s = a.summary;
      return `<h4>${t("check_result")}</h4>
        <dl class="attrs"><dt>${t("region")}</dt><dd>${area(s.region.ha, s.region.mu)}</dd>
        <dt>${t("zones_touched")}</dt><dd>${s.zones_touched}</dd>
        <dt>${t("flags_inside")}</dt><dd>${s.flags}</dd>
        <dt>${t("observed")}</dt><dd>${pct(s.observed_fraction)}${s.last_observed ? ` · ${t("last_observed")} ${date(s.last_observed)}` : ""}</dd>
        <dt>${t("not_observed")}</dt><dd class="not-observed">${a.not_observed ? `<span class="sw hatch"></span> ${t("not_observed_drawn")}` : t("all_observed")}</dd></dl>
        <div class="zones">${a.zones.length ? table([t("zone"), t("area"), t("observed")], a.zones.map((z) => [
          `${esc(z.name)} <small>${esc(word("regime", z.regime))}</small>`, area(z.overlap.ha, z.overlap.mu), pct(z.observed_fraction)]))
          : `<div class="muted">${t("no_zones")}</div>`}</div>
        ${a.flags.length ? `<h4>${t("flags_inside")}</h4>${table(["#", t("severity"), t("activity"), t("status")], a.flags.map((f) => [
          `<a href="#" data-flag="${f.id}">${f.id}</a>`, esc(word("severity", f.severity)), esc(word("activity", f.activity)),
          esc(word("status", f.status))]))}` : ""}`;
    });
  }

  screen() {
    const poly = this.polygon();
    if (!poly) return this.run(async () => `<div class="error">${t("need_polygon")}</div>`);
    const activity = $(".activity", this.el).value;
    return this.run(async () => {
      const a = await api.send("POST", "/screenings", { footprint: poly, activity });
      this.fm.showCheck(a, poly);  // the zones and control units touched, outlined on the map
      return `<h4>${t("screening")}: <span class="verdict v-${esc(a.verdict)}">${esc(word("verdict", a.verdict))}</span></h4>
        <dl class="attrs"><dt>${t("area")}</dt><dd>${area(a.area_ha, a.area_mu)}</dd>
        ${a.nearest_redline ? `<dt>${t("nearest")}</dt><dd>${esc(a.nearest_redline.name)} · ${Math.round(a.nearest_redline.distance_m)} m</dd>` : ""}</dl>
        <div class="zones">${a.zones.length ? table([t("zone"), t("area"), t("verdict")], a.zones.map((z) => [
          `${esc(z.name)} <small>${esc(word("regime", z.regime))}</small>`, area(z.overlap_ha, z.overlap_mu),
          `<span class="verdict v-${esc(z.verdict)}">${esc(word("verdict", z.verdict))}</span>`]))
          : `<div class="muted">${t("no_zones")}</div>`}</div>
        ${a.control_units.length ? `<h4>${t("control_units")}</h4><div class="units">${table([t("layer_control"), t("unit_code"), t("verdict")],
          a.control_units.map((u) => [`${esc(u.name)} <small>${esc(word("regime", u.regime))}</small>`, `<code>${esc(u.code)}</code>`,
            `<span class="verdict v-${esc(u.verdict)}">${esc(word("verdict", u.verdict))}</span>`]))}</div>` : ""}`;
    });
  }
}
