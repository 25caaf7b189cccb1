// Overview: flags by month, activity, severity, admin unit and status, from /stats, and the
// rectification progress from the ledger (/ledger): the API counts, with the page's filters and
// restricted to the caller's jurisdiction; the page only draws.
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import * as api from "./api.js";
import { esc, table } from "./dom.js";
import { num, pct, t, word } from "./i18n.js";
import { SEVERITY_COLORS } from "./map.js";
import { VOCAB } from "./state.js";

const STATUS_COLORS = { new: "#e0312b", dispatched: "#f08a24", verified_violation: "#b71c1c", false_positive: "#9e9e9e",
  permitted: "#1e88e5", rectifying: "#f2c230", rectified: "#7cb342", closed: "#2e7d32" };
const order = (kind) => (a, b) => VOCAB[kind].indexOf(a[kind]) - VOCAB[kind].indexOf(b[kind]);

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip, Legend);
Chart.defaults.font.family = "'Noto Sans CJK SC', 'Noto Sans SC', 'Microsoft YaHei', sans-serif";
Chart.defaults.animation = false;

const CHARTS = [
  { key: "month", title: "overview_month", label: (g) => g.month },
  { key: "severity", title: "overview_severity", label: (g) => word("severity", g.severity),
    color: (g) => SEVERITY_COLORS[g.severity], sort: order("severity") },
  { key: "activity", title: "overview_activity", label: (g) => word("activity", g.activity) },
  { key: "region", title: "overview_region", label: (g) => g.admin_name || g.admin_code },
  { key: "status", title: "overview_status", label: (g) => word("status", g.status), sort: order("status"),
    color: (g) => STATUS_COLORS[g.status] },
];

const PROGRESS = [
  { key: "rectified", color: "#7cb342" },
  { key: "open_on_time", color: "#f2c230" },
  { key: "overdue", color: "#e0312b" },
];

export class Overview {
  constructor(el) { this.el = el; this.charts = []; }

  /** Draw the statistics for ``params``: the page's filters as API query parameters. */
  async render(params) {
    this.charts.forEach((c) => c.destroy());
    this.charts = [];
    this.el.innerHTML = CHARTS.map((c) => `<figure class="chart" data-key="${c.key}"><figcaption>${esc(t(c.title))}</figcaption>
      <div class="canvas-box"><canvas></canvas></div></figure>`).join("")
      + `<figure class="chart progress" data-key="progress"><figcaption>${esc(t("progress_title"))}
        <small class="muted">${esc(t("progress_scope"))}</small></figcaption>
        <div class="states"></div><div class="canvas-box"><canvas></canvas></div><div class="progress-table"></div></figure>`;
    await Promise.all([...CHARTS.map(async (c) => {
      const p = new URLSearchParams(params);
      p.set("group_by", c.key);
      const fig = this.el.querySelector(`[data-key="${c.key}"]`);
      try {
        const { groups } = await api.get("/stats", p);
        if (c.key === "month") groups.sort((a, b) => String(a.month).localeCompare(String(b.month)));
        if (c.sort) groups.sort(c.sort);
        this.charts.push(new Chart(fig.querySelector("canvas"), {
          type: "bar",
          data: { labels: groups.map(c.label), datasets: [{ label: t("count"), data: groups.map((g) => g.count),
            backgroundColor: c.color ? groups.map(c.color) : "#c62828" }] },
          options: { responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } },
            scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
        }));
      } catch (e) {
        fig.insertAdjacentHTML("beforeend", `<div class="error">${esc(e.message)}</div>`);
      }
    }), this.progress(params)]);
  }

  /**
   * Rectification progress from the ledger (GET /ledger with the flag filters ``params``: the
   * API's count in each ledger state and its summary by admin unit, inside the caller's
   * jurisdiction): per admin unit the rectified share and the overdue ones, as a chart and a table.
   */
  async progress(params) {
    const fig = this.el.querySelector('[data-key="progress"]');
    try {
      const p = new URLSearchParams(params);
      p.set("f", "json");
      const { states, summary } = await api.get("/ledger", p);
      fig.querySelector(".states").innerHTML = Object.entries(states).map(([s, n]) =>
        `<span class="state" data-status="${s}"><span class="dot" style="background:${STATUS_COLORS[s]}"></span>${esc(word("status", s))} <b>${num(n, 0)}</b></span>`).join("");
      if (!summary.length) {
        fig.querySelector(".canvas-box").remove();
        fig.querySelector(".progress-table").innerHTML = `<div class="muted">${esc(t("progress_none"))}</div>`;
        return;
      }
      const unit = (g) => g.admin_name || g.admin_code || t("unknown_unit");
      const parts = summary.map((g) => ({ rectified: g.rectified, overdue: g.overdue,
        open_on_time: Math.max(g.problems - g.rectified - g.overdue, 0) }));
      this.charts.push(new Chart(fig.querySelector("canvas"), {
        type: "bar",
        data: { labels: summary.map(unit), datasets: PROGRESS.map((d) => ({ label: t(`progress_${d.key}`),
          data: parts.map((p) => p[d.key]), backgroundColor: d.color })) },
        options: { indexAxis: "y", responsive: true, maintainAspectRatio: false,
          plugins: { legend: { position: "bottom" } },
          scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } } },
      }));
      fig.querySelector(".progress-table").innerHTML = table(
        [t("admin"), t("progress_problems"), t("progress_rectified"), t("progress_share"), t("progress_overdue")],
        summary.map((g) => [esc(unit(g)), num(g.problems, 0), num(g.rectified, 0), pct(g.rectified_share),
          g.overdue ? `<b class="overdue">${num(g.overdue, 0)}</b>` : "0"]));
    } catch (e) {
      fig.insertAdjacentHTML("beforeend", `<div class="error">${esc(e.message)}</div>`);
    }
  }
}
