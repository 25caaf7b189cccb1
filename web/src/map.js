// The map: protection layers and flags from the API's vector tiles (or, on a server without the
// tiles endpoint, from its GeoJSON items), a legend, layer switches, an optional basemap.
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
// MapLibre's worker is a file of its own: served beside the bundle (same origin, no blob: or CDN)
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import * as api from "./api.js";
import { t, word } from "./i18n.js";
import { VOCAB } from "./state.js";

maplibregl.setWorkerUrl(workerUrl);

export const SEVERITY_COLORS = { low: "#f2c230", medium: "#f08a24", high: "#e0312b", critical: "#7b1fa2" };
export const REGIME_COLORS = { core: "#1b5e20", buffer: "#43a047", experimental: "#a5d6a7",
  core_protection: "#2e7d32", general_control: "#9ccc65" };
export const LAYERS = ["admin", "redline", "reserve", "permit", "flags"];
export const FLAG_LAYERS = ["flags-fill", "flags-line", "flags-point"];
const ZONES = ["admin", "redline", "reserve", "permit"];

const byValue = (prop, colors, fallback) => ["match", ["get", prop], ...Object.entries(colors).flat(), fallback];

function style(basemap) {
  const sources = {};
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#f4f1ea" } }];
  if (basemap) {
    sources.basemap = { type: "raster", tiles: [basemap], tileSize: 256 };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  return { version: 8, sources, layers };
}

function addLayers(map, tiled) {
  const src = (id) => (tiled ? { source: id, "source-layer": id } : { source: id });
  map.addLayer({ id: "admin-line", type: "line", ...src("admin"),
    paint: { "line-color": "#5f6b7a", "line-width": 1.2, "line-dasharray": [4, 2] } });
  map.addLayer({ id: "redline-fill", type: "fill", ...src("redline"),
    paint: { "fill-color": "#e53935", "fill-opacity": 0.14 } });
  map.addLayer({ id: "redline-line", type: "line", ...src("redline"),
    paint: { "line-color": "#c62828", "line-width": 2 } });
  map.addLayer({ id: "reserve-fill", type: "fill", ...src("reserve"),
    paint: { "fill-color": byValue("regime", REGIME_COLORS, "#66bb6a"), "fill-opacity": 0.35 } });
  map.addLayer({ id: "reserve-line", type: "line", ...src("reserve"),
    paint: { "line-color": "#1b5e20", "line-width": 1 } });
  map.addLayer({ id: "permit-fill", type: "fill", ...src("permit"),
    paint: { "fill-color": "#1e88e5", "fill-opacity": 0.18 } });
  map.addLayer({ id: "permit-line", type: "line", ...src("permit"),
    paint: { "line-color": "#1565c0", "line-width": 1.2, "line-dasharray": [2, 1] } });
  const color = byValue("severity", SEVERITY_COLORS, "#9e9e9e");
  map.addLayer({ id: "flags-fill", type: "fill", ...src("flags"), paint: { "fill-color": color, "fill-opacity": 0.75 } });
  // an outline of a few pixels keeps a small flag visible (and clickable) at county zoom
  map.addLayer({ id: "flags-line", type: "line", ...src("flags"), paint: { "line-color": color, "line-width": 3 } });
  // a province of flags at a glance: a heat view at low zoom, fading into the points
  map.addLayer({ id: "flags-heat", type: "heatmap", ...src("flags"), maxzoom: 8,
    filter: ["==", ["geometry-type"], "Point"],
    paint: { "heatmap-radius": ["interpolate", ["linear"], ["zoom"], 3, 6, 8, 14],
      "heatmap-opacity": ["interpolate", ["linear"], ["zoom"], 6, 0.8, 8, 0],
      "heatmap-color": ["interpolate", ["linear"], ["heatmap-density"], 0, "rgba(255,255,255,0)", 0.2, "#fde0c5",
        0.5, "#f08a24", 0.8, "#e0312b", 1, "#7b1fa2"] } });
  // the tiles carry flags as points below zoom 10 (thinned), polygons from there on
  map.addLayer({ id: "flags-point", type: "circle", ...src("flags"), filter: ["==", ["geometry-type"], "Point"],
    minzoom: 6,
    paint: { "circle-color": color, "circle-radius": ["interpolate", ["linear"], ["zoom"], 6, 2.5, 9, 5],
      "circle-stroke-color": "#fff", "circle-stroke-width": 0.8 } });
  map.addLayer({ id: "flags-selected", type: "line", ...src("flags"), filter: ["==", ["get", "id"], -1],
    paint: { "line-color": "#00bcd4", "line-width": 4 } });
  map.addSource("draft", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({ id: "draft-fill", type: "fill", source: "draft", filter: ["==", ["geometry-type"], "Polygon"],
    paint: { "fill-color": "#0277bd", "fill-opacity": 0.12 } });
  map.addLayer({ id: "draft-line", type: "line", source: "draft", paint: { "line-color": "#0277bd", "line-width": 2 } });
  map.addLayer({ id: "draft-points", type: "circle", source: "draft", filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-radius": 4, "circle-color": "#fff", "circle-stroke-color": "#0277bd", "circle-stroke-width": 2 } });
}

export class FlagMap {
  constructor(container, { config, camera, bounds, onFlagClick, onMove, onError }) {
    this.tiled = Boolean(config.tiles);
    this.flagParams = new URLSearchParams();
    this.visible = Object.fromEntries(LAYERS.map((l) => [l, true]));
    this.map = new maplibregl.Map({
      container, style: style(config.basemap), center: camera?.center ?? [108.7, 39.85], zoom: camera?.zoom ?? 9,
      ...(bounds && !camera ? { bounds: [[bounds[0], bounds[1]], [bounds[2], bounds[3]]],
        fitBoundsOptions: { padding: 40, maxZoom: 15 } } : {}),
      transformRequest: api.transformRequest, attributionControl: false, maxPitch: 0, dragRotate: false,
    });
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    this.map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
    this.map.doubleClickZoom.disable();
    this.ready = new Promise((resolve) => this.map.on("load", resolve)).then(() => this.setup());
    this.map.on("moveend", () => onMove?.({ center: this.map.getCenter().toArray(), zoom: this.map.getZoom() }));
    // errors (a refused or failed tile) are shown on the page, not only in the console
    this.map.on("error", (e) => onError?.(e.error?.status ? `HTTP ${e.error.status}` : String(e.error?.message || e.error)));
    this.onFlagClick = onFlagClick;
    this.clickHandler = null; // a tool (drawing) takes the clicks when set
  }

  tileUrl(id, params) {
    const q = params && params.toString();
    return `${location.origin}/collections/${id}/tiles/WebMercatorQuad/{z}/{y}/{x}${q ? `?${q}` : ""}`;
  }

  async setup() {
    const map = this.map;
    for (const id of ZONES.concat("flags")) {
      if (this.tiled) {
        map.addSource(id, { type: "vector", tiles: [this.tileUrl(id, id === "flags" ? this.flagParams : null)],
          minzoom: 0, maxzoom: 16 });
      } else {
        map.addSource(id, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
      }
    }
    addLayers(map, this.tiled);
    if (!this.tiled) {
      // no tiles endpoint on this server: the zone collections it serves as GeoJSON
      for (const id of ["redline", "reserve"]) {
        api.get(`/collections/${id}/items`, "limit=10000").then((fc) => map.getSource(id).setData(fc)).catch(() => {});
      }
    }
    const flagLayers = FLAG_LAYERS;
    map.on("click", (e) => {
      if (this.clickHandler) return this.clickHandler(e);
      if (!this.visible.flags) return undefined;
      const box = [[e.point.x - 3, e.point.y - 3], [e.point.x + 3, e.point.y + 3]];
      const hit = map.queryRenderedFeatures(box, { layers: flagLayers });
      if (hit.length) this.onFlagClick?.(Number(hit[0].properties.id));
    });
    map.on("dblclick", (e) => this.dblclickHandler?.(e));
    for (const l of flagLayers) {
      map.on("mouseenter", l, () => { if (!this.clickHandler) map.getCanvas().style.cursor = "pointer"; });
      map.on("mouseleave", l, () => { if (!this.clickHandler) map.getCanvas().style.cursor = ""; });
    }
  }

  /** Show the flags that match the filters (the API filters; the map only draws). */
  async setFlagFilter(params) {
    await this.ready;
    this.flagParams = params;
    if (this.tiled) {
      this.map.getSource("flags").setTiles([this.tileUrl("flags", params)]);
    } else {
      const fc = await this.fetchAllFlags(params);
      this.map.getSource("flags").setData(fc);
    }
  }

  async fetchAllFlags(params) {
    const features = [];
    let after = null;
    for (let i = 0; i < 20; i++) {  // at most 200,000 flags without tiles
      const p = new URLSearchParams(params);
      p.set("limit", "10000");
      if (after !== null) p.set("after", String(after));
      const page = await api.get("/collections/flags/items", p);
      features.push(...page.features);
      if (!page.links.some((l) => l.rel === "next")) break;
      after = page.features[page.features.length - 1].id;
    }
    return { type: "FeatureCollection", features };
  }

  setVisible(layer, on) {
    this.visible[layer] = on;
    for (const l of this.map.getStyle().layers) {
      if (l.source === layer) this.map.setLayoutProperty(l.id, "visibility", on ? "visible" : "none");
    }
  }

  select(id) {
    this.ready.then(() => this.map.setFilter("flags-selected", ["==", ["get", "id"], id ?? -1]));
  }

  setDraft(coords, closed) {
    const features = coords.map((c) => ({ type: "Feature", geometry: { type: "Point", coordinates: c }, properties: {} }));
    if (coords.length >= 2) {
      const ring = closed ? [...coords, coords[0]] : coords;
      features.push({ type: "Feature", properties: {},
        geometry: closed && coords.length >= 3 ? { type: "Polygon", coordinates: [ring] } : { type: "LineString", coordinates: ring } });
    }
    this.map.getSource("draft")?.setData({ type: "FeatureCollection", features });
  }

  /** Bring a feature into view beside the panel (on the left of it), unless it is in view already. */
  showFeature(feature) {
    const b = bboxOf([feature]);
    if (!b) return;
    const view = this.map.getBounds();
    const inView = view.contains([b[0], b[1]]) && view.contains([b[2], b[3]]);
    if (!inView) {
      this.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: { top: 60, bottom: 60, left: 60, right: 480 },
        maxZoom: Math.max(this.map.getZoom(), 13), duration: 0 });
    }
  }

  fitTo(bbox) {
    if (bbox) this.map.fitBounds([[bbox[0], bbox[1]], [bbox[2], bbox[3]]], { padding: 40, duration: 0, maxZoom: 15 });
  }

  /** The flags drawn now (for the list and the tests). */
  renderedFlagIds() {
    const ids = this.map.queryRenderedFeatures({ layers: FLAG_LAYERS }).map((f) => Number(f.properties.id));
    return [...new Set(ids)].sort((a, b) => a - b);
  }
}

export function legend() {
  const row = (color, label, kind = "fill") =>
    `<div class="lg-row"><span class="sw ${kind}" style="--c:${color}"></span>${label}</div>`;
  return [
    `<h4>${t("layer_flags")}</h4>`,
    ...VOCAB.severity.slice().reverse().map((s) => row(SEVERITY_COLORS[s], word("severity", s))),
    `<h4>${t("layer_reserve")}</h4>`,
    ...Object.entries(REGIME_COLORS).map(([r, c]) => row(c, word("regime", r))),
    `<h4>${t("layers")}</h4>`,
    row("#e53935", t("layer_redline"), "outline"),
    row("#1565c0", t("layer_permit"), "dashed"),
    row("#5f6b7a", t("layer_admin"), "dashed"),
  ].join("");
}

export function bboxOf(features) {
  let b = null;
  const visit = (c) => {
    if (typeof c[0] === "number") {
      b = b ? [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])] : [c[0], c[1], c[0], c[1]];
    } else c.forEach(visit);
  };
  for (const f of features) if (f.geometry) visit(f.geometry.coordinates);
  return b;
}
