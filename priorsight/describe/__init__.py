"""Describe: several rich, truthful descriptions of every drawing, written by an LLM from the
drawing's metadata (stage 2 of corpus -> describe -> train -> index -> serve).

Public surface:

- :class:`DescribeConfig` (mount as ``Settings.describe``), :class:`BackendConfig`;
- :func:`build_backend` and the backends (``llama-cpp``, ``openai``, ``vllm``);
- :func:`describe_corpus` (the Ray Data job, in :mod:`cluster.describe_job`);
- the output table ``OUT/descriptions.parquet`` keyed by ``drawing_id`` (see :mod:`.pipeline`).
"""

from priorsight.describe.config import BackendConfig, DescribeConfig

__all__ = ["BackendConfig", "DescribeConfig", "describe_corpus"]


def describe_corpus(*args, **kwargs):
    """See :func:`cluster.describe_job.describe_corpus` (imported lazily: it needs Ray)."""
    from cluster.describe_job import describe_corpus as _describe_corpus

    return _describe_corpus(*args, **kwargs)
