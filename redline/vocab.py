"""Controlled vocabulary: activity types, zone regimes, severities, statuses.

Every place that parses a user's word goes through :func:`activity`/:func:`regime`
so synonyms (Chinese and English) are resolved in one place.
"""

from __future__ import annotations

from .errors import FieldMappingError

ACTIVITIES = ("mining", "industrial", "energy", "transport", "construction", "farmland", "tourism", "other")
# Pseudo-activities a class table may use for codes that are not change.
NO_CHANGE = "none"
NO_OBSERVATION = "no_observation"

_ACTIVITY_ALIASES = {
    "mine": "mining",
    "quarry": "mining",
    "采矿": "mining",
    "矿山": "mining",
    "industry": "industrial",
    "工业": "industrial",
    "solar": "energy",
    "pv": "energy",
    "wind": "energy",
    "光伏": "energy",
    "能源": "energy",
    "road": "transport",
    "railway": "transport",
    "交通": "transport",
    "道路": "transport",
    "settlement": "construction",
    "building": "construction",
    "built-up": "construction",
    "建设": "construction",
    "居民点": "construction",
    "farmland_reclamation": "farmland",
    "reclamation": "farmland",
    "cropland": "farmland",
    "开垦": "farmland",
    "耕地": "farmland",
    "tourist": "tourism",
    "旅游": "tourism",
    "其他": "other",
    "no_change": NO_CHANGE,
    "nochange": NO_CHANGE,
    "": NO_CHANGE,
    "cloud": NO_OBSERVATION,
    "clouds": NO_OBSERVATION,
    "not_observed": NO_OBSERVATION,
}

# every word :func:`activity` takes for a real activity (canonical first), e.g. for an API's enum
ACTIVITY_WORDS = ACTIVITIES + tuple(w for w, a in _ACTIVITY_ALIASES.items() if a in ACTIVITIES)

LAYER_KINDS = ("redline", "reserve", "permit", "admin")  # the layers a scan overlays

# "Three lines, one list" (三线一单) zoning: environmental control units (环境管控单元), each with
# its access list (生态环境准入清单). Control units are zones of their own kind (loaded and
# versioned like every layer, but not overlaid by scans); an access list is a versioned table
# keyed by unit code, with a layer version of kind ACCESS_LIST.
CONTROL = "control"
ACCESS_LIST = "access_list"
ZONE_KINDS = LAYER_KINDS + (CONTROL,)  # what ``redline layers load`` reads as zones
CONTROL_REGIMES = ("priority_protection_unit", "key_control_unit", "general_control_unit")
_CONTROL_ALIASES = {
    "优先保护单元": "priority_protection_unit",
    "优先保护": "priority_protection_unit",
    "优先": "priority_protection_unit",
    "priority protection": "priority_protection_unit",
    "priority protection unit": "priority_protection_unit",
    "priority": "priority_protection_unit",
    "重点管控单元": "key_control_unit",
    "重点管控": "key_control_unit",
    "重点": "key_control_unit",
    "key control": "key_control_unit",
    "key control unit": "key_control_unit",
    "key": "key_control_unit",
    "一般管控单元": "general_control_unit",
    "一般管控": "general_control_unit",
    "一般": "general_control_unit",
    "general control unit": "general_control_unit",
    "general": "general_control_unit",
}
CONTROL_LABELS = {
    "priority_protection_unit": "优先保护单元",
    "key_control_unit": "重点管控单元",
    "general_control_unit": "一般管控单元",
}

# An access list entry's decision (ascending leniency), and the screening verdict it gives.
ACCESS_DECISIONS = ("prohibited", "restricted", "allowed")
ACCESS_VERDICT = {"prohibited": "prohibited", "restricted": "needs_approval", "allowed": "clear"}
_DECISION_ALIASES = {
    "禁止": "prohibited",
    "禁止类": "prohibited",
    "禁止准入": "prohibited",
    "prohibit": "prohibited",
    "forbidden": "prohibited",
    "banned": "prohibited",
    "限制": "restricted",
    "限制类": "restricted",
    "限制准入": "restricted",
    "有条件准入": "restricted",
    "restrict": "restricted",
    "restricted": "restricted",
    "needs_approval": "restricted",
    "needs approval": "restricted",
    "conditional": "restricted",
    "允许": "allowed",
    "允许类": "allowed",
    "准入": "allowed",
    "allow": "allowed",
    "permitted": "allowed",
}
ANY_ACTIVITY = "*"  # an access list entry for every activity
_ANY_ACTIVITY_WORDS = {"*", "any", "all", "全部", "所有", "一切", "所有活动", "全部活动"}

# Zone regimes. Red lines carry one regime; reserves carry the classic three-zone
# scheme or, after the 2019 reform, two zones.
REDLINE = "redline"
RESERVE_REGIMES = ("core", "buffer", "experimental", "core_protection", "general_control")
_REGIME_ALIASES = {
    "核心区": "core",
    "缓冲区": "buffer",
    "实验区": "experimental",
    "核心保护区": "core_protection",
    "一般控制区": "general_control",
    "core zone": "core",
    "buffer zone": "buffer",
    "experimental zone": "experimental",
    "transition": "experimental",
    "core protection": "core_protection",
    "general control": "general_control",
}

SEVERITIES = ("low", "medium", "high", "critical")  # ascending

CONFIDENCES = ("nominal", "high", "highest")  # ascending

FLAG_STATUSES = (
    "new",
    "dispatched",
    "verified_violation",
    "false_positive",
    "permitted",
    "rectifying",
    "rectified",
    "closed",
)

MU_PER_HA = 15.0  # 1 mu = 666.667 m2 = 1/15 ha


def _norm(word: str) -> str:
    return str(word).strip().lower().replace("-", "_") if word is not None else ""


def activity(word: str, *, allow_pseudo: bool = False) -> str:
    """Canonical activity for ``word``; raise a clear error for an unknown one."""
    w = _norm(word)
    w = _ACTIVITY_ALIASES.get(w, _ACTIVITY_ALIASES.get(str(word).strip(), w))
    if w in ACTIVITIES or (allow_pseudo and w in (NO_CHANGE, NO_OBSERVATION)):
        return w
    allowed = ", ".join(ACTIVITIES + ((NO_CHANGE, NO_OBSERVATION) if allow_pseudo else ()))
    raise FieldMappingError(f"unknown activity {word!r}; expected one of: {allowed}")


def regime(word: str) -> str:
    """Canonical reserve zone regime for ``word`` (Chinese or English)."""
    raw = str(word).strip()
    w = _REGIME_ALIASES.get(raw, _REGIME_ALIASES.get(raw.lower(), _norm(raw)))
    if w in RESERVE_REGIMES:
        return w
    raise FieldMappingError(
        f"unknown reserve zone {word!r}; expected one of: {', '.join(RESERVE_REGIMES)}"
        " (or 核心区/缓冲区/实验区/核心保护区/一般控制区)"
    )


def control_regime(word: str) -> str:
    """Canonical control unit type for ``word`` (优先保护单元 / 重点管控单元 / 一般管控单元 or English)."""
    raw = str(word).strip()
    w = _CONTROL_ALIASES.get(raw, _CONTROL_ALIASES.get(raw.lower(), _norm(raw)))
    if w in CONTROL_REGIMES:
        return w
    raise FieldMappingError(
        f"unknown control unit type {word!r}; expected one of: {', '.join(CONTROL_REGIMES)}"
        " (or 优先保护单元/重点管控单元/一般管控单元)"
    )


def access_decision(word: str) -> str:
    """Canonical access list decision for ``word`` (禁止 / 限制 / 允许 or English)."""
    raw = str(word).strip()
    w = _DECISION_ALIASES.get(raw, _DECISION_ALIASES.get(raw.lower(), _norm(raw)))
    if w in ACCESS_DECISIONS:
        return w
    raise FieldMappingError(
        f"unknown access list decision {word!r}; expected one of: {', '.join(ACCESS_DECISIONS)} (or 禁止/限制/允许)"
    )


def access_activity(word: str) -> str:
    """An access list entry's activity: a canonical activity, or ``*`` for every activity."""
    if str(word).strip().lower() in _ANY_ACTIVITY_WORDS:
        return ANY_ACTIVITY
    return activity(word)


def severity_rank(severity: str | None) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def hectares_to_mu(ha: float) -> float:
    return ha * MU_PER_HA
