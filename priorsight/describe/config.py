"""Typed configuration of the describe stage.

``DescribeConfig`` is meant to be mounted in :class:`priorsight.config.Settings` as
``describe: DescribeConfig``, so it loads from YAML < ``PRIORSIGHT_DESCRIBE__*`` < CLI flags like
every other section. API keys are never part of the config: only the *name* of the environment
variable that holds one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

BackendKind = Literal["llama-cpp", "openai", "vllm", "none"]
#: How strictly LLM sentences must stick to the metadata (:mod:`priorsight.describe.truth`).
TruthMode = Literal["strict", "lists"]


class LlamaCppConfig(BaseModel):
    """The embedded default: Gemma 3 270M (Q4_K_M GGUF) through llama-cpp-python, on CPU."""

    model_config = {"extra": "forbid"}

    #: A GGUF file; empty means "assemble the packaged Gemma 3 270M into ``model_dir`` once".
    model_path: Path | None = None
    model_dir: Path = Path("~/.cache/priorsight/models")
    n_ctx: int = Field(default=2048, ge=256)
    #: CPU threads per model; empty: the CPUs reserved per actor (``actor_cpus``, at least 1).
    #: llama.cpp threads spin-wait: more threads than free cores is many times slower (measured
    #: 14 tok/s with 1 thread, 1.3-2 tok/s with 2 on a busy 2-core machine).
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=8)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = Field(default=40, ge=0)
    repeat_penalty: float = Field(default=1.1, ge=1)


class OpenAIConfig(BaseModel):
    """Any OpenAI-compatible endpoint (OpenAI, vLLM serve, llama.cpp server, Ollama, ...)."""

    model_config = {"extra": "forbid"}

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gemma-3-270m"
    #: "completions" sends the few-shot prompt as text; "chat" sends the examples as turns.
    api: Literal["completions", "chat"] = "completions"
    #: Name of the environment variable holding the API key (the key itself is never stored).
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    #: Ask for all samples of a prompt in one request (``n``); off: one request per sample, each
    #: with its own seed (for servers that ignore ``n``).
    use_n: bool = False
    top_p: float = Field(default=0.95, gt=0, le=1)


class VLLMConfig(BaseModel):
    """``ray.data.llm`` with vLLM on GPU nodes (see :func:`priorsight.describe.backends.vllm_processor_config`)."""

    model_config = {"extra": "forbid"}

    model_source: str = "google/gemma-3-270m"
    engine_kwargs: dict[str, Any] = Field(default_factory=lambda: {
        "max_model_len": 2048,
        "enable_prefix_caching": True,
        "enable_chunked_prefill": True,
    })
    concurrency: int = Field(default=1, ge=1)
    batch_size: int = Field(default=64, ge=1)
    accelerator_type: str | None = None
    top_p: float = Field(default=0.95, gt=0, le=1)


class BackendConfig(BaseModel):
    """Which LLM writes the descriptions, and its settings."""

    model_config = {"extra": "forbid"}

    kind: BackendKind = "llama-cpp"
    llama_cpp: LlamaCppConfig = LlamaCppConfig()
    openai: OpenAIConfig = OpenAIConfig()
    vllm: VLLMConfig = VLLMConfig()


class DescribeConfig(BaseModel):
    """How many descriptions, from which prompt and backend, and how the Ray job runs."""

    model_config = {"extra": "forbid"}

    #: Descriptions per drawing (entry 0 is always the metadata-only one).
    k: int = Field(default=20, ge=1)
    #: Templated (view-specific, no LLM) descriptions kept per drawing even when the LLM gives
    #: enough (at most half of ``k - 1``); they also fill up to ``k`` when it gives fewer.
    n_templates: int = Field(default=3, ge=0)
    #: The prompt file ``prompts/VERSION.yaml`` (``v1``, the default before ``v2``, stays loadable).
    prompt_version: str = "v2"
    #: The truth filter: ``strict`` keeps a sentence only when each of its words is in the
    #: patent's metadata, a function word or generic shape/part/relation vocabulary
    #: (``vocab/truth.yaml``); ``lists`` drops only sentences with a listed risky word (material,
    #: colour, number, unit, view, brand) the metadata does not use. Part of the cache key.
    truth: TruthMode = "strict"
    max_tokens: int = Field(default=64, ge=8)
    temperature: float = Field(default=0.8, ge=0)
    seed: int = 0
    #: Samples asked for per description still needed (filtering and dedupe drop some).
    oversample: float = Field(default=1.3, ge=1)
    #: Generation rounds per patent: later rounds regenerate what the filters dropped.
    max_rounds: int = Field(default=2, ge=1)
    #: Descriptions whose normalised token Jaccard similarity reaches this are duplicates.
    dedupe_threshold: float = Field(default=0.7, gt=0, le=1)
    #: Describe with the LLM only the first N patents (the rest get metadata-only and templated
    #: descriptions); empty: all of them.
    llm_patents: int | None = Field(default=None, ge=0)
    #: Patents per ``map_batches`` batch (a killed job loses at most one batch per actor).
    batch_size: int = Field(default=2, ge=1)
    actors: int = Field(default=1, ge=1)
    #: CPUs reserved per actor: fractional, so read tasks never starve on a 2-core machine.
    actor_cpus: float = Field(default=0.5, gt=0)
    #: Where generated descriptions are cached; empty: ``OUT/cache``.
    cache_dir: str | None = None
    backend: BackendConfig = BackendConfig()

    @property
    def threads_per_model(self) -> int:
        """llama.cpp threads per loaded model (see ``LlamaCppConfig.n_threads``)."""
        return self.backend.llama_cpp.n_threads or max(1, int(self.actor_cpus))

    @property
    def n_templates_kept(self) -> int:
        """Templated descriptions reserved per drawing: ``n_templates``, but at most half of
        the ``k - 1`` after entry 0 (so a small ``k`` still gets LLM descriptions)."""
        return min(self.n_templates, (self.k - 1) // 2)

    @property
    def n_llm_wanted(self) -> int:
        """LLM descriptions wanted per patent: what is left of ``k`` after entry 0 and the
        reserved templates."""
        return max(0, self.k - 1 - self.n_templates_kept)
