// The map: protection layers, environmental control units and flags from the API's vector tiles
// (or, on a server without the tiles endpoint, from its GeoJSON items), a legend, layer switches,
// an optional basemap.
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
// MapLibre's worker is a file of its own: served beside the bundle (same origin, no blob: or CDN)
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import * as api from "./api.js";
import { esc } from "./dom.js";
import { t, word } from "./i18n.js";
import { apiParams, VOCAB } from "./state.js";

maplibregl.setWorkerUrl(workerUrl);
// the worker (a module of its own to fetch and compile) starts now, not when the map does
maplibregl.prewarm();

export const SEVERITY_COLORS = { low: "#f2c230", medium: "#f08a24", high: "#e0312b", critical: "#7b1fa2" };
export const REGIME_COLORS = { core: "#1b5e20", buffer: "#43a047", experimental: "#a5d6a7",
  core_protection: "#2e7d32", general_control: "#9ccc65" };
// environmental control units (三线一单) by unit type: calm fills, away from the red lines' red,
// the reserves' greens, the permits' blue and the flags' warm colours; outlines a shade darker
export const CONTROL_COLORS = { priority_protection_unit: "#4db6ac", key_control_unit: "#c9a27e",
  general_control_unit: "#9fa8da" };
const CONTROL_LINES = { priority_protection_unit: "#00897b", key_control_unit: "#8d6e63",
  general_control_unit: "#5c6bc0" };
export const LAYERS = ["admin", "control", "redline", "reserve", "permit", "flags"];
export const LAYERS_OFF = ["control"]; // switched off until the user turns them on
const ZONES = ["admin", "control", "redline", "reserve", "permit"];
const CHECK_ZONES = ["redline", "reserve"]; // the protection layers a check answers about
const PERMIT_ZOOM = 9;
const OUTLINE_ZOOM = 8;
const EMPTY = { type: "FeatureCollection", features: [] };

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

const POINT = ["==", ["geometry-type"], "Point"];
// the tiles carry flags as thinned points below this zoom, as polygons from it on (redline.tiles)
export const FLAG_POINT_ZOOM = 10;
// each kind of flag layer's own filter (geometry), to which the user's filters are added
const FLAG_BASE = { fill: null, line: null, point: POINT, heat: POINT };
const kindOf = (id) => id.replace(/^flags-/, "").replace(/-[ab]$/, "");
const SEVERITY_ORDER = VOCAB.severity;

/**
 * The flag layers. Polygons (``flags-fill``, ``flags-line``) come from the ``flags`` source from
 * FLAG_POINT_ZOOM on. Below it the tiles hold one point per pixel cell (the most severe flag
 * of the cell kept), from one of two point sources, ``a`` or ``b``: the one drawn, and the
 * other that loads server-filtered tiles in the background when the user's filters are ones
 * the client cannot apply exactly to thinned points (see FlagMap.setFlagFilter).
 */
function flagLayers(tiled) {
  const color = byValue("severity", SEVERITY_COLORS, "#9e9e9e");
  const flags = tiled ? { source: "flags", "source-layer": "flags", minzoom: FLAG_POINT_ZOOM } : { source: "flags" };
  const layers = [
    { id: "flags-fill", type: "fill", ...flags, paint: { "fill-color": color, "fill-opacity": 0.75 } },
    // an outline of a few pixels keeps a small flag visible (and clickable) at county zoom
    { id: "flags-line", type: "line", ...flags, paint: { "line-color": color, "line-width": 3 } },
  ];
  for (const set of tiled ? ["a", "b"] : []) {
    const src = { source: `flags-points-${set}`, "source-layer": "flags", layout: { visibility: set === "a" ? "visible" : "none" } };
    // a province of flags at a glance: a heat view at low zoom, fading into the points
    layers.push({ id: `flags-heat-${set}`, type: "heatmap", ...src, maxzoom: 8,
      paint: { "heatmap-radius": ["interpolate", ["linear"], ["zoom"], 3, 6, 8, 14],
        "heatmap-weight": ["interpolate", ["linear"], ["coalesce", ["get", "pixel_flags"], 1], 1, 0.3, 20, 1],
        "heatmap-opacity": HEAT_OPACITY,
        "heatmap-color": ["interpolate", ["linear"], ["heatmap-density"], 0, "rgba(255,255,255,0)", 0.2, "#fde0c5",
          0.5, "#f08a24", 0.8, "#e0312b", 1, "#7b1fa2"] } });
    layers.push({ id: `flags-point-${set}`, type: "circle", ...src, minzoom: 6, maxzoom: FLAG_POINT_ZOOM,
      paint: { "circle-color": color, "circle-radius": ["interpolate", ["linear"], ["zoom"], 6, 2.5, 9, 5],
        "circle-stroke-color": "#fff", "circle-stroke-width": 0.8 } });
  }
  return layers;
}
const HEAT_OPACITY = ["interpolate", ["linear"], ["zoom"], 6, 0.8, 8, 0];

/**
 * Whether ``filters`` pick exactly the right pixel cells from thinned point tiles: true with
 * no filter, or with only a severity filter that takes every severity above the least it
 * takes (a cell holds a flag of the filter exactly when its most severe flag, the one kept,
 * passes).
 */
export function exactOnPoints(filters) {
  if (filters.status.length || filters.activity.length || filters.admin.length || filters.from || filters.to) {
    return false;
  }
  if (!filters.severity.length) return true;
  const least = Math.min(...filters.severity.map((s) => SEVERITY_ORDER.indexOf(s)));
  return SEVERITY_ORDER.slice(least).every((s) => filters.severity.includes(s));
}

/**
 * The user's filters as a MapLibre expression over the fields the flag tiles carry (severity,
 * status, activity, admin_code, first_seen, last_seen: redline.model.FLAG_TILE_FIELDS), with
 * the API's meaning: one of the values ticked for each list; a flag seen in the period
 * (last_seen >= from and first_seen <= to). The map is redrawn with it at once, without a
 * new tile; the jurisdiction stays the API's (the tiles only hold what the caller may see).
 */
export function flagFilter(filters) {
  const all = [];
  const anyOf = (prop, values) => { if (values.length) all.push(["in", ["get", prop], ["literal", values]]); };
  anyOf("status", filters.status);
  anyOf("severity", filters.severity);
  anyOf("activity", filters.activity);
  anyOf("admin_code", filters.admin);
  if (filters.from) all.push([">=", ["to-string", ["get", "last_seen"]], filters.from]);
  if (filters.to) all.push(["<=", ["to-string", ["get", "first_seen"]], filters.to]);
  return all;
}

function layerFilter(id, filters) {
  const parts = [FLAG_BASE[kindOf(id)], ...flagFilter(filters)].filter(Boolean);
  return parts.length ? ["all", ...parts] : null;
}

function addLayers(map, tiled, filters) {
  const src = (id) => (tiled ? { source: id, "source-layer": id } : { source: id });
  // control units tile a whole county: a faint fill under everything else (no tile is asked
  // for while the layer is off)
  const off = { layout: { visibility: "none" } };
  map.addLayer({ id: "control-fill", type: "fill", ...src("control"), ...off,
    paint: { "fill-color": byValue("regime", CONTROL_COLORS, "#bdbdbd"), "fill-opacity": 0.28 } });
  map.addLayer({ id: "control-line", type: "line", ...src("control"), ...off,
    paint: { "line-color": byValue("regime", CONTROL_LINES, "#757575"), "line-width": 1.5 } });
  map.addLayer({ id: "admin-line", type: "line", ...src("admin"),
    paint: { "line-color": "#5f6b7a", "line-width": 1.2, "line-dasharray": [4, 2] } });
  // a province of red lines is a tint; their outlines from a county's zoom on (thousands of
  // outlines, even the fill's own antialiasing ones, cost more to draw than they show)
  map.addLayer({ id: "redline-fill", type: "fill", ...src("redline"),
    paint: { "fill-color": "#e53935", "fill-opacity": 0.14, "fill-antialias": false } });
  map.addLayer({ id: "redline-line", type: "line", ...src("redline"), minzoom: OUTLINE_ZOOM,
    paint: { "line-color": "#c62828", "line-width": 2 } });
  map.addLayer({ id: "reserve-fill", type: "fill", ...src("reserve"),
    paint: { "fill-color": byValue("regime", REGIME_COLORS, "#66bb6a"), "fill-opacity": 0.35 } });
  map.addLayer({ id: "reserve-line", type: "line", ...src("reserve"),
    paint: { "line-color": "#1b5e20", "line-width": 1 } });
  // permits are project footprints (hundreds of metres): specks below a county's zoom
  map.addLayer({ id: "permit-fill", type: "fill", ...src("permit"), minzoom: PERMIT_ZOOM,
    paint: { "fill-color": "#1e88e5", "fill-opacity": 0.18 } });
  map.addLayer({ id: "permit-line", type: "line", ...src("permit"), minzoom: PERMIT_ZOOM,
    paint: { "line-color": "#1565c0", "line-width": 1.2, "line-dasharray": [2, 1] } });
  // what a check answered: the zones it touched, the part of the region no image observed
  map.addSource("check", { type: "geojson", data: EMPTY });
  map.addLayer({ id: "check-unobserved", type: "fill", source: "check", filter: ["==", ["get", "part"], "not_observed"],
    paint: { "fill-pattern": "hatch", "fill-opacity": 0.9 } });
  map.addLayer({ id: "check-unobserved-line", type: "line", source: "check",
    filter: ["==", ["get", "part"], "not_observed"], paint: { "line-color": "#546e7a", "line-width": 1 } });
  for (const kind of CHECK_ZONES) {
    map.addLayer({ id: `check-zones-${kind}`, type: "line", ...src(kind), filter: ["any"],
      paint: { "line-color": "#ff6f00", "line-width": 3 } });
  }
  // the control units a screening touched (by unit code), drawn whether the layer is on or not
  // (shown only then: a layer shown asks for its source's tiles)
  map.addLayer({ id: "check-zones-control", type: "line", ...src("control"), filter: ["any"], ...off,
    paint: { "line-color": "#ff6f00", "line-width": 2.5, "line-dasharray": [4, 2] } });
  map.addLayer({ id: "check-region", type: "line", source: "check", filter: ["==", ["get", "part"], "region"],
    paint: { "line-color": "#0277bd", "line-width": 2.5, "line-dasharray": [3, 1.5] } });
  // polygons from FLAG_POINT_ZOOM on; below it the tiles hold points only
  for (const layer of flagLayers(tiled)) {
    const filter = layerFilter(layer.id, filters);
    map.addLayer({ ...layer, ...(filter ? { filter } : {}) });
  }
  map.addLayer({ id: "flags-selected", type: "line", ...src("flags"), filter: ["==", ["get", "id"], -1],
    ...(tiled ? { minzoom: FLAG_POINT_ZOOM } : {}), paint: { "line-color": "#00bcd4", "line-width": 4 } });
  map.addSource("draft", { type: "geojson", data: EMPTY });
  map.addLayer({ id: "draft-fill", type: "fill", source: "draft", filter: ["==", ["geometry-type"], "Polygon"],
    paint: { "fill-color": "#0277bd", "fill-opacity": 0.12 } });
  map.addLayer({ id: "draft-line", type: "line", source: "draft", paint: { "line-color": "#0277bd", "line-width": 2 } });
  map.addLayer({ id: "draft-points", type: "circle", source: "draft", filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-radius": 4, "circle-color": "#fff", "circle-stroke-color": "#0277bd", "circle-stroke-width": 2 } });
}

/** A hatch for "not observed by imagery": diagonal grey lines on a transparent tile. */
function hatch(size = 8) {
  const data = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if ((x + y) % size < 2) data.set([84, 110, 122, 230], (y * size + x) * 4);
    }
  }
  return { width: size, height: size, data };
}

export class FlagMap {
  /**
   * ``bounds``: a promise of the box to open on (lon/lat), or null to keep ``camera``. The map
   * starts at once (style, worker); its tiles are asked for only once the view is known.
   */
  constructor(container, { config, camera, bounds, filters, onFlagClick, onMove, onError }) {
    this.tiled = Boolean(config.tiles);
    this.filters = filters;
    this.cql = null;  // a filter the tiles cannot express on the client: sent with the tile URL
    this.visible = Object.fromEntries(LAYERS.map((l) => [l, !LAYERS_OFF.includes(l)]));
    this.active = "a";  // the point source drawn (the other loads filtered tiles when needed)
    this.generation = 0;
    this.map = new maplibregl.Map({
      container, style: style(config.basemap), center: camera?.center ?? [108.7, 39.85], zoom: camera?.zoom ?? 9,
      transformRequest: api.transformRequest, attributionControl: false, maxPitch: 0, dragRotate: false,
      // no labels to fade in, one copy of the world: no frame drawn for either
      fadeDuration: 0, renderWorldCopies: false,
    });
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    this.map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
    this.map.doubleClickZoom.disable();
    // milestones of the start, as Performance API marks (scripts/bench_web.py reports them)
    performance.mark("map:created");
    this.map.once("load", () => performance.mark("map:load"));
    // sources and layers go in as soon as the style is parsed, before the first frame: that frame
    // asks for the tiles (a frame is slow to draw in software WebGL: it must not come first)
    const styled = new Promise((resolve) => this.map.once("style.load", resolve)).then(() => performance.mark("map:style"));
    this.ready = Promise.all([styled, camera ? null : bounds]).then(([, box]) => {
      if (box) {
        this.map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 40, maxZoom: 15, duration: 0 });
      }
      performance.mark("map:view");
      this.setup();
      performance.mark("map:sources");
    });
    // the first complete render: the page fetches what is not on the map only after it
    this.firstRender = this.ready.then(() => new Promise((resolve) => this.map.once("idle", resolve)))
      .then(() => performance.mark("map:idle"));
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

  setup() {
    const map = this.map;
    map.addImage("hatch", hatch());
    // the flags first: their tiles are asked for before the zones' (a browser opens six
    // connections to a server at a time)
    if (this.tiled) {
      this.pointParams = this.serverPointParams(this.filters);
      for (const set of ["a", "b"]) {
        map.addSource(`flags-points-${set}`, { type: "vector", tiles: [this.tileUrl("flags", this.pointParams)],
          maxzoom: FLAG_POINT_ZOOM - 1 });
      }
    }
    for (const id of ["flags", ...ZONES]) {
      if (this.tiled) {
        map.addSource(id, { type: "vector", tiles: [this.tileUrl(id, id === "flags" ? this.cql : null)],
          minzoom: id === "flags" ? FLAG_POINT_ZOOM : 0, maxzoom: 16 });
      } else {
        map.addSource(id, { type: "geojson", data: EMPTY });
      }
    }
    addLayers(map, this.tiled, this.filters);
    this.loaded = new Set();  // the zone collections fetched as GeoJSON (no tiles endpoint)
    if (!this.tiled) {
      // no tiles endpoint on this server: the zone collections and the flags it serves as GeoJSON
      for (const id of ["redline", "reserve"]) this.loadItems(id);
      this.reloadFlags();
    }
    // a click opens the flag under it; elsewhere, with the layer on, it names the control unit
    map.on("click", (e) => {
      if (this.clickHandler) return this.clickHandler(e);
      if (this.visible.flags) {
        const box = [[e.point.x - 3, e.point.y - 3], [e.point.x + 3, e.point.y + 3]];
        const hit = map.queryRenderedFeatures(box, { layers: this.drawnLayers() });
        if (hit.length) return this.onFlagClick?.(Number(hit[0].properties.id));
      }
      const unit = this.visible.control && map.queryRenderedFeatures(e.point, { layers: ["control-fill"] })[0];
      if (unit) this.showUnit(unit.properties, e.lngLat);
      return undefined;
    });
    map.on("dblclick", (e) => this.dblclickHandler?.(e));
    for (const l of this.map.getStyle().layers.map((x) => x.id).filter((id) => /^flags-(fill|line|point)/.test(id))) {
      map.on("mouseenter", l, () => { if (!this.clickHandler) map.getCanvas().style.cursor = "pointer"; });
      map.on("mouseleave", l, () => { if (!this.clickHandler) map.getCanvas().style.cursor = ""; });
    }
  }

  loadItems(id) {
    if (this.loaded.has(id)) return;
    this.loaded.add(id);
    api.get(`/collections/${id}/items`, "limit=10000").then((fc) => this.map.getSource(id).setData(fc)).catch(() => {});
  }

  /** A control unit's name, type and code in a popup at ``lngLat``. */
  showUnit(unit, lngLat) {
    this.popup?.remove();
    this.popup = new maplibregl.Popup({ className: "unit-popup", maxWidth: "300px" }).setLngLat(lngLat)
      .setHTML(`<strong>${esc(unit.name)}</strong><dl class="attrs">
        <dt>${t("unit_type")}</dt><dd><span class="sw fill" style="--c:${CONTROL_COLORS[unit.regime] ?? "#bdbdbd"}"></span>
          ${esc(word("regime", unit.regime))}</dd>
        <dt>${t("unit_code")}</dt><dd><code>${esc(unit.code)}</code></dd></dl>`)
      .addTo(this.map);
  }

  /** The flag layers drawn now (the active point set, not the one loading in the background). */
  drawnLayers() {
    return ["flags-fill", "flags-line", ...(this.tiled ? [`flags-point-${this.active}`] : [])];
  }

  /** What the point tiles must be asked for: the filters the client cannot apply exactly to them. */
  serverPointParams(filters) {
    const p = exactOnPoints(filters) ? new URLSearchParams() : apiParams(filters);
    for (const [k, v] of new URLSearchParams(this.cql ? this.cql.toString() : "")) p.append(k, v);
    return p.toString();
  }

  /**
   * Draw only the flags that match ``filters`` (the page's filter state): on the client, at
   * once, over the tiles already loaded. Polygons (from FLAG_POINT_ZOOM on) are exact. Thinned
   * points are exact too for no filter or a "this severity and above" filter; for any other,
   * the client's answer is drawn at once and tiles filtered by the API are loaded behind it and
   * swapped in when complete. ``cql`` (URLSearchParams of a CQL2 filter the tiles cannot
   * express; none by default) always fetches new tiles.
   */
  setFlagFilter(filters, cql = null) {
    this.filters = filters;
    if (!this.map.getLayer("flags-fill")) return;  // not set up yet: setup() applies them
    const q = cql ? cql.toString() : "";
    const cqlChanged = q !== (this.cql ? this.cql.toString() : "");
    this.cql = cql;
    for (const l of this.map.getStyle().layers) {
      if (l.id.startsWith("flags-") && l.id !== "flags-selected") this.map.setFilter(l.id, layerFilter(l.id, filters));
    }
    if (cqlChanged) this.reloadPolygons();
    if (this.tiled) {
      const params = this.serverPointParams(filters);
      if (params !== this.pointParams || cqlChanged) this.loadPoints(params);
    }
  }

  /** Load point tiles with ``params`` into the other point source; draw it once complete. */
  loadPoints(params) {
    const map = this.map;
    const gen = ++this.generation;
    const next = this.active === "a" ? "b" : "a";
    this.pointParams = params;
    map.getSource(`flags-points-${next}`).setTiles([this.tileUrl("flags", params)]);
    // drawn invisibly meanwhile, so that its tiles are fetched
    this.setPointOpacity(next, false);
    for (const kind of ["heat", "point"]) {
      map.setLayoutProperty(`flags-${kind}-${next}`, "visibility", this.visible.flags ? "visible" : "none");
    }
    const swap = () => {
      if (gen !== this.generation) return;  // a newer filter took over
      if (!map.isSourceLoaded(`flags-points-${next}`)) { map.once("idle", swap); return; }
      this.setPointOpacity(next, true);
      for (const kind of ["heat", "point"]) map.setLayoutProperty(`flags-${kind}-${this.active}`, "visibility", "none");
      this.active = next;
      this.pointsSettled?.();
    };
    map.once("idle", swap);
  }

  setPointOpacity(set, on) {
    this.map.setPaintProperty(`flags-heat-${set}`, "heatmap-opacity", on ? HEAT_OPACITY : 0);
    this.map.setPaintProperty(`flags-point-${set}`, "circle-opacity", on ? 1 : 0);
    this.map.setPaintProperty(`flags-point-${set}`, "circle-stroke-opacity", on ? 1 : 0);
  }

  reloadPolygons() {
    if (this.tiled) this.map.getSource("flags").setTiles([this.tileUrl("flags", this.cql)]);
  }

  /** Fetch the flags again (they changed: a workflow move). */
  reloadFlags() {
    if (!this.map.getSource("flags")) return;
    if (this.tiled) {
      this.reloadPolygons();
      this.map.getSource(`flags-points-${this.active}`).setTiles([this.tileUrl("flags", this.pointParams)]);
    } else {
      this.fetchAllFlags(this.cql).then((fc) => this.map.getSource("flags").setData(fc)).catch(() => {});
    }
  }

  async fetchAllFlags(params) {
    const features = [];
    let after = null;
    for (let i = 0; i < 20; i++) {  // at most 200,000 flags without tiles
      const p = new URLSearchParams(params || "");
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
    if (on && !this.tiled && layer === "control") this.loadItems(layer);
    if (!on && layer === "control") this.popup?.remove();
    for (const l of this.map.getStyle().layers) {
      const source = l.source?.startsWith("flags-points-") ? "flags" : l.source;
      // of the two point sets, only the one drawn; a screening's control units stay outlined
      if (source === layer && !l.source.endsWith(this.active === "a" ? "-b" : "-a") && l.id !== "check-zones-control") {
        this.map.setLayoutProperty(l.id, "visibility", on ? "visible" : "none");
      }
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

  /**
   * Draw what a check or a screening answered: the region (drawn, or as the server read an
   * uploaded file), the zones it touched (outlined on the zone tiles: name, regime and code), the
   * control units a screening touched (by code) and the part of the region that no image
   * observed (hatched). ``answer`` null clears it.
   */
  showCheck(answer, region = null) {
    const features = [];
    if (region) features.push({ type: "Feature", properties: { part: "region" }, geometry: region });
    if (answer?.not_observed) {
      features.push({ type: "Feature", properties: { part: "not_observed" }, geometry: answer.not_observed });
    }
    this.ready.then(() => {
      this.map.getSource("check").setData({ type: "FeatureCollection", features });
      for (const kind of CHECK_ZONES) {
        // a zone is its name, regime and code together (a reserve's zones share its name and code)
        const zones = (answer?.zones ?? []).filter((z) => z.layer === kind).map((z) => ["all",
          ["==", ["get", "name"], z.name], ["==", ["get", "regime"], z.regime],
          ["==", ["to-string", ["get", "code"]], z.code ?? ""]]);
        this.map.setFilter(`check-zones-${kind}`, ["any", ...zones]);
      }
      const units = (answer?.control_units ?? []).map((u) => u.code);
      if (units.length && !this.tiled) this.loadItems("control");
      this.map.setFilter("check-zones-control", units.length ? ["in", ["get", "code"], ["literal", units]] : ["any"]);
      this.map.setLayoutProperty("check-zones-control", "visibility", units.length ? "visible" : "none");
    });
    const box = bboxOf(features);
    if (box && region) {
      const view = this.map.getBounds();
      if (!view.contains([box[0], box[1]]) || !view.contains([box[2], box[3]])) this.fitTo(box);
    }
  }

  /** The check drawn now, as the map holds it (for the tests): parts and touched zone features. */
  checkDrawn() {
    const parts = this.map.querySourceFeatures("check").map((f) => f.properties.part);
    const zones = this.map.queryRenderedFeatures({ layers: CHECK_ZONES.map((k) => `check-zones-${k}`) })
      .map((f) => `${f.properties.name}|${f.properties.regime}`);
    const units = this.map.queryRenderedFeatures({ layers: ["check-zones-control"] }).map((f) => f.properties.code);
    return { parts: [...new Set(parts)].sort(), zones: [...new Set(zones)].sort(), units: [...new Set(units)].sort(),
      unobserved: this.map.queryRenderedFeatures({ layers: ["check-unobserved"] }).length };
  }

  fitTo(bbox) {
    if (bbox) this.map.fitBounds([[bbox[0], bbox[1]], [bbox[2], bbox[3]]], { padding: 40, duration: 0, maxZoom: 15 });
  }

  /** The flags drawn now (for the list and the tests). */
  renderedFlagIds() {
    const ids = this.map.queryRenderedFeatures({ layers: this.drawnLayers() }).map((f) => Number(f.properties.id));
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
    `<h4>${t("layer_control")}</h4>`,
    ...Object.entries(CONTROL_COLORS).map(([r, c]) => row(c, word("regime", r))),
    `<h4>${t("layers")}</h4>`,
    row("#e53935", t("layer_redline"), "outline"),
    row("#1565c0", t("layer_permit"), "dashed"),
    row("#5f6b7a", t("layer_admin"), "dashed"),
    `<h4>${t("check")}</h4>`,
    row("#ff6f00", t("zones_touched"), "outline"),
    row("#546e7a", t("not_observed"), "hatch"),
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
