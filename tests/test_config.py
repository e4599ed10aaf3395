"""Config precedence: defaults < YAML < PRIORSIGHT_* env < CLI overrides; secrets stay secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from priorsight.config import load_settings


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("storage:\n  endpoint_url: http://yaml\n  region: eu-west-1\ncorpus:\n  head_share: 0.25\n")
    monkeypatch.setenv("PRIORSIGHT_STORAGE__REGION", "us-east-2")
    s = load_settings(cfg)
    assert s.storage.endpoint_url == "http://yaml"
    assert s.storage.region == "us-east-2"
    assert s.corpus.head_share == 0.25
    s = load_settings(cfg, {"storage": {"endpoint_url": "http://cli"}})
    assert s.storage.endpoint_url == "http://cli" and s.storage.region == "us-east-2"


def test_command_options_from_the_environment_are_not_settings(monkeypatch):
    """PRIORSIGHT_SHARED_DIR and friends are one command's options: every command still loads."""
    monkeypatch.setenv("PRIORSIGHT_SHARED_DIR", "/data/shared")
    monkeypatch.setenv("PRIORSIGHT_NO_REEXEC", "1")
    monkeypatch.setenv("PRIORSIGHT_STORAGE__REGION", "us-east-2")
    s = load_settings()
    assert s.storage.region == "us-east-2" and "shared_dir" not in s.model_dump()


def test_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("PRIORSIGHT_STORAGE__SECRET_ACCESS_KEY", "hunter2")
    s = load_settings()
    assert s.storage.secret_access_key.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in s.model_dump_json()


def test_bad_config_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage:\n  multipart_chunk_mb: 1\n")
    with pytest.raises(ValidationError, match="multipart_chunk_mb"):
        load_settings(bad)
    bad.write_text("nonsense_key: 1\n")
    with pytest.raises(ValidationError, match="nonsense_key"):
        load_settings(bad)
