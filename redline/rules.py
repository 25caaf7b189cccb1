"""Severity rules as data (``redline/data/rules.toml``), evaluated in one place."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import vocab
from .errors import InputError

PROTECTION_LAYERS = ("redline", "reserve")
VERDICTS = ("prohibited", "needs_approval", "clear")  # strictest first


@dataclass(frozen=True)
class Rule:
    name: str
    layer: str
    regimes: frozenset[str] | None  # None: any regime of the layer
    activities: frozenset[str] | None  # None: any activity
    severity: str

    def matches(self, layer: str, regime: str, activity: str) -> bool:
        return (
            self.layer == layer
            and (self.regimes is None or regime in self.regimes)
            and (self.activities is None or activity in self.activities)
        )


@dataclass(frozen=True)
class Rules:
    version: str
    rules: tuple[Rule, ...]
    permit_cover: float = 0.9
    verdicts: tuple[tuple[str, str], ...] = ()  # severity -> screening verdict

    def verdict(self, severity: str | None) -> str:
        return dict(self.verdicts).get(severity, "needs_approval") if severity else "clear"

    def grade(self, layer: str, regime: str, activity: str) -> tuple[str | None, str | None]:
        """(severity, rule name) of the strictest matching rule, or (None, None)."""
        best = None
        for rule in self.rules:
            if rule.matches(layer, regime, activity) and (
                best is None or vocab.severity_rank(rule.severity) > vocab.severity_rank(best.severity)
            ):
                best = rule
        return (best.severity, best.name) if best else (None, None)


def _wild(values) -> frozenset[str] | None:
    return None if values is None or "*" in values else frozenset(values)


def load_rules(path: Path | None = None) -> Rules:
    """Rules from ``path``, or the shipped defaults."""
    try:
        if path is None:
            text = resources.files("redline").joinpath("data/rules.toml").read_text(encoding="utf-8")
            where = "default rules"
        else:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read rules {path}: {exc}") from None
    rules = []
    for i, r in enumerate(doc.get("rule", []), start=1):
        try:
            layer = r["layer"]
            severity = r["severity"]
        except KeyError as exc:
            raise InputError(f"{where}: rule {i} lacks {exc.args[0]!r}") from None
        if layer not in PROTECTION_LAYERS:
            raise InputError(f"{where}: rule {i}: layer must be one of {PROTECTION_LAYERS}, not {layer!r}")
        if severity not in vocab.SEVERITIES:
            raise InputError(f"{where}: rule {i}: severity must be one of {vocab.SEVERITIES}, not {severity!r}")
        regimes = r.get("regimes")
        if regimes is not None and "*" not in regimes:
            regimes = [vocab.regime(x) if layer == "reserve" else x for x in regimes]
        activities = r.get("activities")
        if activities is not None and "*" not in activities:
            activities = [vocab.activity(a) for a in activities]
        rules.append(Rule(r.get("name", f"rule {i}"), layer, _wild(regimes), _wild(activities), severity))
    if not rules:
        raise InputError(f"{where}: no [[rule]] entries")
    cover = float(doc.get("permit_cover", 0.9))
    if not 0 < cover <= 1:
        raise InputError(f"{where}: permit_cover must be in (0, 1]")
    verdicts = doc.get("verdicts", {})
    for sev, verdict in verdicts.items():
        if sev not in vocab.SEVERITIES or verdict not in VERDICTS:
            raise InputError(f"{where}: [verdicts] {sev} = {verdict!r}: expected a severity = one of {VERDICTS}")
    return Rules(str(doc.get("version", "unversioned")), tuple(rules), cover, tuple(sorted(verdicts.items())))
