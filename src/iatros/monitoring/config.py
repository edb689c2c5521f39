"""The monitor's configuration file (`iatros serve --monitor-config FILE`, JSON): escalation
levels, how long a value stays current, the hold after an acknowledgement, and the webhooks
(their secrets from the environment, see `webhooks.load_webhooks`)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iatros.errors import ConfigError
from iatros.monitoring.engine import Level, MonitorSettings
from iatros.monitoring.webhooks import DeliveryResult, WebhookSender, WebhookTarget, load_webhooks

SECTIONS = ("escalation", "stale_after_minutes", "hold_minutes", "deterioration", "rhythm")
DETERIORATION_KEYS = {"run", "model", "every_minutes", "sensitivity", "threshold"}


@dataclass(frozen=True)
class MonitorConfig:
    settings: MonitorSettings = field(default_factory=MonitorSettings)
    webhooks: tuple[WebhookTarget, ...] = ()
    # {"run": PATH} or {"model": promoted name}, with every_minutes / sensitivity / threshold
    deterioration: dict[str, Any] | None = None
    # {"run": PATH of an af-ecg run, "threshold", "min_quality"}: checked when the service
    # opens the run (`api.monitor_rhythm.rhythm_config`)
    rhythm: dict[str, Any] | None = None

    def webhook_sender(self, on_result: Callable[[DeliveryResult], None] | None = None
                       ) -> WebhookSender | None:
        return WebhookSender(self.webhooks, on_result=on_result) if self.webhooks else None


def _minutes(data: Mapping[str, Any], key: str, default_s: float, path: Path) -> float:
    value = data.get(key)
    if value is None:
        return default_s
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise ConfigError(f"monitor config {path}: {key} must be a positive number of minutes, "
                          f"not {value!r}")
    return float(value) * 60.0


def _levels(entries: Any, path: Path) -> tuple[Level, ...]:
    if entries is None:
        return MonitorSettings().levels
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"monitor config {path}: escalation must be a non-empty list of "
                          f'{{"name": ..., "after_minutes": ...}}')
    levels = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) - {"name", "after_minutes"}:
            raise ConfigError(f"monitor config {path}: escalation[{i}] must be an object with "
                              f"name and after_minutes only")
        name, after = entry.get("name"), entry.get("after_minutes", 0)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"monitor config {path}: escalation[{i}].name must be a name")
        if isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0:
            raise ConfigError(f"monitor config {path}: escalation[{i}].after_minutes must be "
                              f"a number >= 0")
        levels.append(Level(name.strip(), float(after) * 60.0))
    if levels[0].after_s != 0 or any(b.after_s <= a.after_s for a, b in itertools.pairwise(levels)):
        raise ConfigError(f"monitor config {path}: the first escalation level starts at 0 "
                          f"minutes and each later one later than the one before")
    return tuple(levels)


def _deterioration(entry: Any, path: Path) -> dict[str, Any] | None:
    """The deterioration model's section, checked (the run itself is opened by the service)."""
    if entry is None:
        return None
    where = f"monitor config {path}: deterioration"
    if not isinstance(entry, dict) or set(entry) - DETERIORATION_KEYS:
        raise ConfigError(f"{where} must be an object with {', '.join(sorted(DETERIORATION_KEYS))}")
    if ("run" in entry) == ("model" in entry):
        raise ConfigError(f"{where} needs exactly one of run (a run folder) or model (a promoted "
                          f"model's name)")
    out: dict[str, Any] = {k: str(entry[k]) for k in ("run", "model") if k in entry}
    for key, low, high in (("every_minutes", 1.0, 24 * 60.0), ("sensitivity", 0.01, 0.99),
                           ("threshold", 0.0, 1.0)):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                low <= value <= high):
            raise ConfigError(f"{where}.{key} must be a number from {low:g} to {high:g}")
        out[key] = float(value)
    return out


def load_monitor_config(path: str | Path) -> MonitorConfig:
    """The monitor's settings and webhooks from a JSON file; errors name the file and field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None   # load_webhooks gives the precise message
    levels = _levels(data.get("escalation") if isinstance(data, dict) else None, path)
    webhooks = load_webhooks(path, other_sections=SECTIONS,
                             known_levels=[level.name for level in levels])
    defaults = MonitorSettings()
    settings = MonitorSettings(
        stale_after_s=_minutes(data, "stale_after_minutes", defaults.stale_after_s, path),
        hold_s=_minutes(data, "hold_minutes", defaults.hold_s, path), levels=levels)
    deterioration = _deterioration(data.get("deterioration"), path)
    rhythm = data.get("rhythm")
    if rhythm is not None and not isinstance(rhythm, dict):
        raise ConfigError(f"monitor config {path}: rhythm must be an object with run, "
                          f"threshold and min_quality")
    return MonitorConfig(settings, tuple(webhooks), deterioration, rhythm)
