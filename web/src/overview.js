// Overview: flags by month, activity, severity, admin unit and status, from /stats (the API
// counts, restricted to the caller's jurisdiction; the page only draws).
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import * as api from "./api.js";
import { esc } from "./dom.js";
import { t, word } from "./i18n.js";
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

export class Overview {
  constructor(el) { this.el = el; this.charts = []; }

  async render(params) {
    this.charts.forEach((c) => c.destroy());
    this.charts = [];
    this.el.innerHTML = CHARTS.map((c) => `<figure class="chart" data-key="${c.key}"><figcaption>${esc(t(c.title))}</figcaption>
      <div class="canvas-box"><canvas></canvas></div></figure>`).join("");
    await Promise.all(CHARTS.map(async (c) => {
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
    }));
  }
}
