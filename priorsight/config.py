"""Typed configuration: defaults < YAML file < environment (``PRIORSIGHT_*``) < CLI flags.

Environment variables use ``__`` between nesting levels, e.g.
``PRIORSIGHT_STORAGE__ENDPOINT_URL=http://127.0.0.1:5000``. Secrets are ``SecretStr`` so
they never appear in logs or ``repr``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, SecretStr

#: Where a config file is looked for when none is named (``PRIORSIGHT_CONFIG`` overrides).
DEFAULT_CONFIG_FILE = "priorsight.yaml"


class StorageConfig(BaseModel):
    """S3 settings. Empty values fall back to boto3's own chain (AWS_* env, profiles, IMDS)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = None
    multipart_threshold_mb: int = Field(default=64, ge=5)
    multipart_chunk_mb: int = Field(default=16, ge=5)
    max_attempts: int = Field(default=5, ge=1)


class CorpusConfig(BaseModel):
    """Corpus-wide conventions."""

    #: head classes hold the first ``head_share`` of drawings (classes sorted by frequency),
    #: tail classes the last ``tail_share``; the rest is medium.
    head_share: float = Field(default=1 / 3, gt=0, lt=1)
    tail_share: float = Field(default=1 / 3, gt=0, lt=1)
    max_image_pixels: int = Field(default=80_000_000, gt=0)


class Settings(BaseModel):
    """The one config model of PriorSight."""

    model_config = {"extra": "forbid"}

    data_dir: Path = Path("data")
    storage: StorageConfig = StorageConfig()
    corpus: CorpusConfig = CorpusConfig()


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _env_overrides() -> dict[str, Any]:
    """``PRIORSIGHT_A__B=v`` as ``{"a": {"b": "v"}}``, so env beats YAML per leaf."""
    out: dict[str, Any] = {}
    for key, value in os.environ.items():
        if not key.startswith("PRIORSIGHT_") or key == "PRIORSIGHT_CONFIG":
            continue
        parts = key[len("PRIORSIGHT_"):].lower().split("__")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load settings: YAML file (``path``, ``$PRIORSIGHT_CONFIG`` or ``./priorsight.yaml`` if it
    exists), then ``PRIORSIGHT_*`` environment variables, then ``overrides`` (CLI flags)."""
    path = path or os.environ.get("PRIORSIGHT_CONFIG")
    data: dict[str, Any] = {}
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must hold a mapping at the top level")
        data = loaded
    data = _deep_merge(data, _env_overrides())
    data = _deep_merge(data, overrides or {})
    return Settings.model_validate(data)
