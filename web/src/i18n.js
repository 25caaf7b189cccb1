// Interface text in Chinese (default) and English; numbers and dates formatted for the locale.
const TEXT = {
  "zh-CN": {
    app: "生态保护红线监管", signin: "登录", signout: "退出", token: "访问令牌", token_hint: "粘贴管理员发给您的令牌（以 rl_ 开头）",
    bad_token: "令牌无效或已吊销", lang: "English", map: "地图", overview: "概览", check: "核查", screening: "选址预审",
    layers: "图层", legend: "图例", filters: "筛选", status: "状态", severity: "严重程度", activity: "活动类型",
    admin: "行政区", date_from: "起", date_to: "止", apply: "应用", reset: "重置", any: "全部", flags: "疑点图斑",
    layer_flags: "疑点图斑", layer_redline: "生态保护红线", layer_reserve: "自然保护区", layer_permit: "许可用地",
    layer_admin: "行政区划", layer_control: "环境管控单元", unit_type: "单元类型", unit_code: "单元编码",
    control_units: "涉及环境管控单元", basemap: "底图", matched: "共 {n} 处", shown: "显示 {n} 处",
    flag: "图斑", zone: "所在区域", first_seen: "首次发现", last_seen: "最近发现", area: "面积",
    confidence: "置信度", conflicts: "冲突区域", observations: "观测记录", history: "处理记录", evidence: "现场证据",
    coords: "坐标 (CGCS2000 经纬度)", copy: "复制", copied: "已复制", navigate: "导航", move_to: "流转为",
    note: "备注", no_moves: "当前状态无可用操作", upload: "上传证据", upload_file: "照片或 PDF", uploaded: "已上传",
    close: "关闭", loading: "加载中…", error: "出错", draw: "绘制区域", finish: "完成", clear: "清除",
    draw_hint: "在地图上单击添加顶点，双击或点“完成”结束", upload_region: "上传区域文件（GeoPackage、Shapefile zip、KML、GeoJSON）",
    run_check: "核查", run_screening: "预审", check_result: "核查结果", region: "区域面积", zones_touched: "涉及区域",
    flags_inside: "区域内图斑", observed: "影像覆盖", last_observed: "最近观测", verdict: "结论", nearest: "最近红线",
    distance: "距离", no_zones: "未涉及任何保护区域", overview_month: "按月新增图斑", overview_activity: "按活动类型",
    overview_severity: "按严重程度", overview_region: "按行政区", overview_status: "按状态", count: "数量",
    role: "角色", jurisdiction: "辖区", all_units: "全部", list: "图斑列表", need_polygon: "请先绘制或上传区域",
    at: "时间", actor: "操作人", action: "操作", report: "报告", report_pdf: "问题清单 (PDF)", no_evidence: "暂无证据", permitted_by: "许可",
    rule: "规则", ha: "公顷", mu: "亩", zoom_to: "定位", http_401: "未登录或令牌无效", http_403: "无权限", http_404: "不存在", http_409: "操作不允许",
    http_413: "内容过大", http_422: "输入有误", http_503: "服务繁忙", month: "月份", all_months: "全部月份",
    progress_title: "整改进展", progress_scope: "（整改台账，按当前筛选）", progress_none: "台账中暂无符合筛选的问题",
    progress_rectified: "已整改", progress_open_on_time: "未整改（未逾期）", progress_overdue: "逾期",
    progress_problems: "问题数", progress_share: "整改率", unknown_unit: "未知行政区",
    not_observed: "未被影像覆盖", not_observed_drawn: "见地图斜线区域", all_observed: "全部已覆盖",
  },
  en: {
    app: "Ecological red-line supervision", signin: "Sign in", signout: "Sign out", token: "Access token",
    token_hint: "Paste the token your administrator sent you (starts with rl_)", bad_token: "Invalid or revoked token",
    lang: "中文", map: "Map", overview: "Overview", check: "Check", screening: "Screening", layers: "Layers",
    legend: "Legend", filters: "Filters", status: "Status", severity: "Severity", activity: "Activity",
    admin: "Admin unit", date_from: "From", date_to: "To", apply: "Apply", reset: "Reset", any: "Any", flags: "Flags",
    layer_flags: "Flags", layer_redline: "Red lines", layer_reserve: "Nature reserves", layer_permit: "Permits",
    layer_admin: "Admin units", layer_control: "Environmental control units", unit_type: "Unit type",
    unit_code: "Unit code", control_units: "Control units touched", basemap: "Basemap", matched: "{n} in all", shown: "{n} shown",
    flag: "Flag", zone: "Zone", first_seen: "First seen", last_seen: "Last seen", area: "Area",
    confidence: "Confidence", conflicts: "Conflicts", observations: "Observations", history: "History",
    evidence: "Evidence", coords: "Coordinates (CGCS2000 lon/lat)", copy: "Copy", copied: "Copied",
    navigate: "Navigate", move_to: "Move to", note: "Note", no_moves: "No moves from this status",
    upload: "Upload evidence", upload_file: "Photo or PDF", uploaded: "Uploaded", close: "Close",
    loading: "Loading…", error: "Error", draw: "Draw region", finish: "Finish", clear: "Clear",
    draw_hint: "Click the map to add vertices; double-click or press Finish", upload_region:
      "Upload a region (GeoPackage, zipped shapefile, KML, GeoJSON)", run_check: "Check", run_screening: "Screen",
    check_result: "Check result", region: "Region", zones_touched: "Zones touched", flags_inside: "Flags inside",
    observed: "Observed by imagery", last_observed: "Last observed", verdict: "Verdict", nearest: "Nearest red line",
    distance: "Distance", no_zones: "No protected zone touched", overview_month: "New flags by month",
    overview_activity: "By activity", overview_severity: "By severity", overview_region: "By admin unit",
    overview_status: "By status", count: "Count", role: "Role", jurisdiction: "Jurisdiction",
    all_units: "all", list: "Flags", need_polygon: "Draw or upload a region first", at: "At", actor: "By",
    action: "Action", report: "Report", report_pdf: "Problem sheet (PDF)", no_evidence: "No evidence yet", permitted_by: "Permit", rule: "Rule",
    ha: "ha", mu: "mu", zoom_to: "Zoom to", http_401: "Not signed in", http_403: "Not allowed", http_404: "Not found",
    http_409: "Not possible now", http_413: "Too large", http_422: "Bad input", http_503: "Busy", month: "Month", all_months: "every month",
    progress_title: "Rectification progress", progress_scope: "(the rectification ledger, with the filters above)",
    progress_none: "No problem on the ledger matches the filters", progress_rectified: "Rectified",
    progress_open_on_time: "Open, on time", progress_overdue: "Overdue", progress_problems: "Problems",
    progress_share: "Rectified share", unknown_unit: "unknown unit",
    not_observed: "Not observed by imagery", not_observed_drawn: "hatched on the map", all_observed: "all observed",
  },
};

const WORDS = {
  "zh-CN": {
    status: { new: "新发现", dispatched: "已派发", verified_violation: "核实违法", false_positive: "误报",
      permitted: "已许可", rectifying: "整改中", rectified: "已整改", closed: "已销号" },
    severity: { low: "低", medium: "中", high: "高", critical: "严重" },
    activity: { mining: "采矿", industrial: "工业", energy: "能源（光伏/风电）", transport: "交通", construction: "建设",
      farmland: "开垦耕地", tourism: "旅游", other: "其他" },
    regime: { redline: "生态保护红线", core: "核心区", buffer: "缓冲区", experimental: "实验区",
      core_protection: "核心保护区", general_control: "一般控制区", permit: "许可用地", admin: "行政区",
      priority_protection_unit: "优先保护单元", key_control_unit: "重点管控单元", general_control_unit: "一般管控单元" },
    verdict: { prohibited: "禁止", needs_approval: "需审批", clear: "无冲突" },
    role: { viewer: "查看", inspector: "巡查员", analyst: "分析员", admin: "管理员" },
    confidence: { nominal: "一般", high: "高", highest: "最高" },
    action: { created: "扫描发现", observed: "再次观测", recheck: "图层更新复核", recovery: "恢复" },
  },
  en: {
    status: { new: "new", dispatched: "dispatched", verified_violation: "verified violation",
      false_positive: "false positive", permitted: "permitted", rectifying: "rectifying", rectified: "rectified",
      closed: "closed" },
    severity: { low: "low", medium: "medium", high: "high", critical: "critical" },
    activity: { mining: "mining", industrial: "industrial", energy: "energy (solar, wind)", transport: "transport",
      construction: "construction", farmland: "farmland", tourism: "tourism", other: "other" },
    regime: { redline: "red line", core: "core zone", buffer: "buffer zone", experimental: "experimental zone",
      core_protection: "core protection", general_control: "general control", permit: "permit", admin: "admin unit",
      priority_protection_unit: "priority protection unit", key_control_unit: "key control unit",
      general_control_unit: "general control unit" },
    verdict: { prohibited: "prohibited", needs_approval: "needs approval", clear: "clear" },
    role: { viewer: "viewer", inspector: "inspector", analyst: "analyst", admin: "administrator" },
    confidence: { nominal: "nominal", high: "high", highest: "highest" },
    action: { created: "found by a scan", observed: "seen again", recheck: "rechecked", recovery: "recovered" },
  },
};

export const LANGS = Object.keys(TEXT);
let lang = localStorage.getItem("redline.lang") || "zh-CN";
if (!TEXT[lang]) lang = "zh-CN";

export function getLang() { return lang; }
export function setLang(l) {
  lang = TEXT[l] ? l : "zh-CN";
  localStorage.setItem("redline.lang", lang);
  document.documentElement.lang = lang;
}
export function t(key, vars = {}) {
  const s = TEXT[lang][key] ?? TEXT.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}
/** A controlled word (status, severity, activity, regime...) in the interface language. */
export function word(kind, value) {
  if (value == null) return "";
  return WORDS[lang][kind]?.[value] ?? value;
}
export function num(x, digits = 2) {
  return Number(x).toLocaleString(lang, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
export function pct(x) {
  return Number(x).toLocaleString(lang, { style: "percent", maximumFractionDigits: 0 });
}
/** Hectares and mu, formatted for the locale. */
export function area(ha, mu) {
  return `${num(ha)} ${t("ha")} (${num(mu, 1)} ${t("mu")})`;
}
export function date(s) {
  if (!s) return "";
  const d = new Date(s.length === 10 ? `${s}T00:00:00` : s);
  if (Number.isNaN(d.getTime())) return s;
  const opts = s.length === 10 ? { dateStyle: "medium" } : { dateStyle: "medium", timeStyle: "short" };
  return d.toLocaleString(lang, opts);
}
