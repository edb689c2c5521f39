"""The service's settings: workspace and database (from iatros settings), the token secret
(required), limits, and what is allowed across origins (nothing by default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iatros.monitoring.config import MonitorConfig
from iatros.settings import Settings, get_settings


@dataclass(frozen=True)
class ServeConfig:
    """Everything `create_app` needs. `secret` signs access tokens (>= 32 characters, no
    default); `deid_key` (else IATROS_DEID_KEY) keys de-identification pseudonyms."""

    secret: str
    settings: Settings = field(default_factory=get_settings)
    token_ttl_seconds: int = 3600
    max_upload_bytes: int = 20 * 1024 * 1024
    max_items: int = 256
    rate_per_minute: int = 600
    cors_origins: tuple[str, ...] = ()
    deid_key: str | None = None
    reload_seconds: float = 2.0
    secure_cookies: bool = False
    device_rate_per_minute: int = 60_000
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    @property
    def work_dir(self) -> Path:
        return self.settings.home / "serve"
