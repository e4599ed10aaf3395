"""API keys, scopes and rate limits of the query API (docs/security.md).

* A key is ``ps_`` + 43 random URL-safe characters (256 bits), made by :func:`new_key` and shown
  once; only its SHA-256 (``sha256:<hex>``) is stored, inline in ``serve.security.api_keys`` or
  in the key file that ``priorsight apikey create`` writes. A fast hash is enough for keys of
  this entropy (nothing to brute-force), and it keeps the check to microseconds per request.
* Clients send ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``). Scopes: ``search``
  (search, patents, images, info) and ``admin`` (alias swap, record export; includes search).
* :class:`RateLimiter`: a token bucket per key name (per client address when auth is off), in
  the memory of each ingress replica.

Raw keys are never logged, stored or echoed; logs name the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from priorsight.config import ApiKeyConfig, SecurityConfig

log = logging.getLogger(__name__)

KEY_PREFIX = "ps_"
SCOPES = ("search", "admin")


def new_key() -> str:
    """A fresh random API key (shown once, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_key_file(path: str | Path) -> list[ApiKeyConfig]:
    """The keys of a key file (``{"api_keys": [...]}``); a missing file holds none."""
    p = Path(path)
    if not p.exists():
        return []
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping with 'api_keys'")
    return [ApiKeyConfig.model_validate(k) for k in data.get("api_keys") or []]


def write_key_file(path: str | Path, keys: list[ApiKeyConfig]) -> None:
    """Write the key file atomically, readable by its owner only (it holds hashes, not keys)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump({"api_keys": [k.model_dump(exclude_none=True) for k in keys]}, f, sort_keys=False)
    os.replace(tmp, p)


def add_key(path: str | Path, name: str, scopes: list[str], rate_limit_per_s: float | None = None) -> str:
    """Create a key named ``name`` in the key file and return it (the only time it is seen)."""
    keys = read_key_file(path)
    if any(k.name == name for k in keys):
        raise ValueError(f"a key named {name!r} exists already (revoke it first)")
    key = new_key()
    keys.append(
        ApiKeyConfig(
            name=name,
            hash=hash_key(key),
            scopes=sorted(set(scopes)),  # type: ignore[arg-type]
            rate_limit_per_s=rate_limit_per_s,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
    )
    write_key_file(path, keys)
    return key


def revoke_key(path: str | Path, name: str) -> bool:
    keys = read_key_file(path)
    kept = [k for k in keys if k.name != name]
    if len(kept) == len(keys):
        return False
    write_key_file(path, kept)
    return True


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and scopes, or ``anonymous`` (auth off)."""

    name: str
    scopes: frozenset[str]
    rate_limit_per_s: float | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS = Principal("anonymous", frozenset(SCOPES))


class KeyStore:
    """Hashed keys from the config and the key file (re-read when its mtime changes)."""

    def __init__(self, security: SecurityConfig, recheck_s: float = 2.0):
        self.security = security
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._file_mtime: float | None = None
        self._checked = 0.0
        self._by_hash: dict[str, ApiKeyConfig] = {}
        self._load()

    @property
    def enabled(self) -> bool:
        s = self.security
        if s.auth == "auto":
            return bool(s.api_keys) or s.api_keys_file is not None
        return s.auth == "on"

    def _load(self) -> None:
        keys = list(self.security.api_keys)
        path = self.security.api_keys_file
        mtime = None
        if path:
            try:
                mtime = Path(path).stat().st_mtime
                keys += read_key_file(path)
            except FileNotFoundError:
                log.warning("API key file %s does not exist: no key from it is accepted", path)
            except (OSError, ValueError) as exc:  # keep the keys we had; never fail open
                log.error("API key file %s unreadable, keeping the previous keys: %s", path, exc)
                return
        self._by_hash = {k.hash: k for k in keys}
        self._file_mtime = mtime
        if self.enabled:
            log.info("API keys on: %d key(s) (%s)", len(keys), ", ".join(sorted(k.name for k in keys)) or "none")

    def _maybe_reload(self) -> None:
        path = self.security.api_keys_file
        now = time.monotonic()
        if not path or now - self._checked < self.recheck_s:
            return
        with self._lock:
            self._checked = now
            try:
                mtime: float | None = Path(path).stat().st_mtime
            except OSError:
                mtime = None
            if mtime != self._file_mtime:
                self._load()

    def lookup(self, key: str | None) -> Principal | None:
        """The principal of a presented key, or None if it is missing or unknown."""
        if not key:
            return None
        self._maybe_reload()
        digest = hash_key(key)
        found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(found.hash, digest):
            return None
        return Principal(found.name, frozenset(found.scopes), found.rate_limit_per_s)


def presented_key(headers: dict[str, str] | object) -> str | None:
    """The key of a request: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    get = headers.get  # type: ignore[attr-defined]
    auth = get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = get("x-api-key")
    return key.strip() if key else None


class RateLimiter:
    """Token buckets by identity: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, max_identities: int = 100_000):
        self.rate = rate
        self.burst = burst
        self.max_identities = max_identities
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, last time)
        self._lock = threading.Lock()

    def acquire(self, identity: str, rate: float | None = None, now: float | None = None, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: 0.0 if allowed, else the seconds until they are available."""
        rate = self.rate if rate is None else rate
        if rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(identity, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens >= cost:
                self._buckets[identity] = (tokens - cost, now)
                return 0.0
            self._buckets[identity] = (tokens, now)
            if len(self._buckets) > self.max_identities:  # forget the idlest (full) buckets
                self._buckets = dict(
                    sorted(self._buckets.items(), key=lambda kv: kv[1][1])[-self.max_identities // 2 :]
                )
            return (cost - tokens) / rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_open(security: SecurityConfig, host: str) -> bool:
    """Whether the API would be served without keys on a non-loopback address (then the only
    rate limit is per client address, so a proxy in front must pass client addresses on)."""
    return not (KeyStore(security).enabled or is_loopback(host))


def warn_if_open(security: SecurityConfig, host: str) -> bool:
    """Log a warning when :func:`is_open`; returns whether it is."""
    if not is_open(security, host):
        return False
    log.warning(
        "API keys are OFF and Serve listens on %s (not loopback): anyone who can reach it can search; "
        "configure serve.security.api_keys_file (priorsight apikey create) or bind 127.0.0.1 "
        "behind a proxy (docs/security.md)",
        host,
    )
    return True
