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

LAYER_KINDS = ("redline", "reserve", "permit", "admin")

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


def severity_rank(severity: str | None) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def hectares_to_mu(ha: float) -> float:
    return ha * MU_PER_HA
