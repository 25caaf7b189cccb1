// A flag's panel: attributes, conflicts, observations, history, evidence, coordinates,
// the workflow moves the API allows now (for roles that may move flags) and evidence upload.
import * as api from "./api.js";
import { $, esc, table } from "./dom.js";
import { area, date, num, pct, t, word } from "./i18n.js";

/** A point on the flag to navigate to: the middle of its largest ring's vertices (display only). */
function markerPoint(geometry) {
  const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  const ring = polys.map((p) => p[0]).sort((a, b) => b.length - a.length)[0];
  const pts = ring.slice(0, -1);
  return [pts.reduce((s, p) => s + p[0], 0) / pts.length, pts.reduce((s, p) => s + p[1], 0) / pts.length];
}

export class FlagPanel {
  constructor(el, { me, onChanged, onClose, onZoom }) {
    this.onZoom = onZoom;
    this.el = el;
    this.me = me;
    this.onChanged = onChanged;
    this.onClose = onClose;
    this.thumbs = [];
  }

  close() {
    this.el.hidden = true;
    this.el.innerHTML = "";
    this.id = null;
    this.thumbs.forEach(URL.revokeObjectURL);
    this.thumbs = [];
  }

  async open(id, { zoom = false } = {}) {
    this.id = id;
    this.el.hidden = false;
    this.el.innerHTML = `<div class="muted">${t("loading")}</div>`;
    try {
      const [flag, feature, hist, evidence] = await Promise.all([
        api.get(`/flags/${id}`), api.get(`/collections/flags/items/${id}`),
        api.get(`/flags/${id}/history`), api.get(`/flags/${id}/evidence`),
      ]);
      if (this.id !== id) return;
      this.render(flag, feature, hist, evidence);
      if (zoom) this.onZoom?.(feature);
    } catch (e) {
      this.el.innerHTML = `<div class="error">${t("error")}: ${esc(e.message)}</div>`;
    }
  }

  render(f, feature, hist, evidence) {
    const [lon, lat] = markerPoint(feature.geometry);
    const coord = `${lon.toFixed(6)}, ${lat.toFixed(6)}`;
    const may = (p) => this.me.permissions.includes(p);
    const moves = f.allowed_next.map((s) =>
      `<button type="button" class="move" data-status="${esc(s)}">${esc(word("status", s))}</button>`).join("");
    this.el.innerHTML = `
      <header><h3>${t("flag")} #${f.id} <span class="badge sev-${esc(f.severity)}">${esc(word("severity", f.severity))}</span>
        <span class="badge status">${esc(word("status", f.status))}</span></h3>
        <button type="button" class="close" title="${t("close")}">×</button></header>
      <dl class="attrs">
        <dt>${t("activity")}</dt><dd>${esc(word("activity", f.activity))} · ${t("confidence")} ${esc(word("confidence", f.confidence))}</dd>
        <dt>${t("zone")}</dt><dd>${esc(f.zone_name || "")} (${esc(word("regime", f.zone_regime))})</dd>
        <dt>${t("admin")}</dt><dd>${esc(f.admin_name || "")} ${esc(f.admin_code || "")}</dd>
        <dt>${t("area")}</dt><dd>${area(f.area_ha, f.area_mu)}</dd>
        <dt>${t("first_seen")}</dt><dd>${date(f.first_seen)}</dd>
        <dt>${t("last_seen")}</dt><dd>${date(f.last_seen)}</dd>
        ${f.permit_id ? `<dt>${t("permitted_by")}</dt><dd>${esc(f.permit_id)}</dd>` : ""}
        <dt>${t("coords")}</dt><dd class="coords"><code>${coord}</code>
          <button type="button" class="copy">${t("copy")}</button>
          <a class="geo" href="geo:${lat.toFixed(6)},${lon.toFixed(6)}">${t("navigate")}</a></dd>
        <dt>${t("report")}</dt><dd><button type="button" class="report">${t("report_pdf")}</button> <span class="report-msg"></span></dd>
      </dl>
      ${may("workflow") ? `<section class="workflow"><h4>${t("move_to")}</h4>
        ${moves ? `<textarea class="note" rows="2" maxlength="4000" placeholder="${t("note")}"></textarea><div class="moves">${moves}</div>`
                : `<div class="muted">${t("no_moves")}</div>`}<div class="msg"></div></section>` : ""}
      <section><h4>${t("conflicts")}</h4>${table([t("zone"), t("severity"), t("area"), t("rule")],
        f.conflicts.map((c) => [`${esc(c.zone_name)} <small>${esc(word("regime", c.regime))}</small>`,
          esc(word("severity", c.severity)), area(c.overlap_ha, c.overlap_mu), `<small>${esc(c.rule || "")}</small>`]))}</section>
      <section><h4>${t("observations")}</h4>${table([t("at"), "", t("activity"), t("area")],
        f.observations.map((o) => [date(o.observed_on), esc(o.sensor || o.product_id), esc(word("activity", o.activity)),
          `${num(o.area_ha)} ${t("ha")}`]))}</section>
      <section class="history"><h4>${t("history")}</h4>${table([t("at"), t("actor"), t("action")],
        hist.map((h) => [date(h.at), esc(h.actor), esc(describe(h))]))}</section>
      <section class="evidence"><h4>${t("evidence")}</h4><div class="thumbs">${evidence.length ? "" : `<span class="muted">${t("no_evidence")}</span>`}</div>
        ${may("evidence") ? `<form class="upload"><input type="file" name="file" accept="image/jpeg,image/png,application/pdf" required>
          <input type="text" name="note" maxlength="4000" placeholder="${t("note")}">
          <input type="hidden" name="lon" value="${lon.toFixed(6)}"><input type="hidden" name="lat" value="${lat.toFixed(6)}">
          <button type="submit">${t("upload")}</button><span class="msg"></span></form>` : ""}</section>`;
    $(".close", this.el).onclick = () => this.onClose?.();
    $(".copy", this.el).onclick = async (e) => {
      try { await navigator.clipboard.writeText(coord); } catch { /* clipboard refused: the text stays selectable */ }
      e.target.textContent = t("copied");
    };
    $(".report", this.el).onclick = () => this.report();
    for (const b of this.el.querySelectorAll("button.move")) b.onclick = () => this.move(b.dataset.status);
    const form = $("form.upload", this.el);
    if (form) form.onsubmit = (e) => { e.preventDefault(); this.upload(form); };
    this.showThumbs(evidence);
  }

  async showThumbs(evidence) {
    const box = $(".thumbs", this.el);
    for (const ev of evidence) {
      const cell = document.createElement("figure");
      cell.innerHTML = `<figcaption>${esc(ev.note || ev.original_name || "")}<br><small>${date(ev.at)} · ${esc(ev.actor)}</small></figcaption>`;
      box.append(cell);
      if (!ev.content_type.startsWith("image/")) { cell.prepend(Object.assign(document.createElement("div"), { className: "doc", textContent: "PDF" })); continue; }
      try {
        const blob = await api.get(`/evidence/${ev.id}`);  // with the token: no bare URL to the file
        const url = URL.createObjectURL(blob);
        this.thumbs.push(url);
        const img = Object.assign(document.createElement("img"), { src: url, alt: ev.original_name || "" });
        cell.prepend(img);
      } catch { /* a missing file leaves the caption */ }
    }
  }

  /** The problem sheet (PDF), fetched with the token and saved as a file. */
  async report() {
    const msg = $(".report-msg", this.el);
    msg.textContent = t("loading");
    try {
      const blob = await api.get(`/flags/${this.id}/report`, "f=pdf");
      const url = URL.createObjectURL(blob);
      const a = Object.assign(document.createElement("a"), { href: url, download: `flag-${this.id}.pdf` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      msg.textContent = "";
    } catch (e) {
      msg.textContent = `${t("error")}: ${e.message}`;
    }
  }

  async move(status) {
    const note = $("textarea.note", this.el)?.value || null;
    const msg = $(".workflow .msg", this.el);
    try {
      await api.send("PATCH", `/flags/${this.id}`, { status, note });
      await this.open(this.id);
      this.onChanged?.(this.id);
    } catch (e) {
      msg.textContent = `${t("error")}: ${e.message}`;
    }
  }

  async upload(form) {
    const msg = $(".msg", form);
    const data = new FormData(form);
    if (!data.get("note")) data.delete("note");
    try {
      await api.send("POST", `/flags/${this.id}/evidence`, data);
      await this.open(this.id);
    } catch (e) {
      msg.textContent = `${t("error")}: ${e.message}`;
    }
  }
}

function describe(h) {
  const d = h.detail || {};
  if (h.action === "status") return `${word("status", d.from)} → ${word("status", d.to)}${d.note ? ` · ${d.note}` : ""}`;
  if (h.action === "evidence") return `${t("evidence")}${d.note ? ` · ${d.note}` : ""}`;
  const product = d.product_id ? ` · ${d.product_id}` : "";
  return `${word("action", h.action)}${product}`;
}
