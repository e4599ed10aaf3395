"""LLM backends: the OpenAI-compatible client against a real HTTP server on 127.0.0.1, the
vLLM processor config (no vLLM needed), and llama-cpp with the embedded Gemma when installed."""

from __future__ import annotations

import logging

import pytest

from priorsight.describe.backends import (
    BackendError,
    OpenAIBackend,
    build_backend,
    model_id,
    vllm_processor_config,
    vllm_sampling_params,
)
from priorsight.describe.config import BackendConfig, LlamaCppConfig, OpenAIConfig, VLLMConfig
from priorsight.describe.prompts import Prompt
from tests.test_describe_fakes import FakeLLM, fake_description


def backend(server: FakeLLM, **kw) -> OpenAIBackend:
    cfg = dict(base_url=server.url, model="fake", backoff_s=0.001, backoff_max_s=0.01, timeout_s=5, max_retries=3)
    cfg.update(kw)
    return OpenAIBackend(OpenAIConfig(**cfg))


PROMPT = Prompt(text="Examples...\nObject: sport spoon\nDescription:",
                messages=({"role": "system", "content": "rules"}, {"role": "user", "content": "Object: sport spoon"}))


@pytest.mark.parametrize("api,path", [("completions", "/v1/completions"), ("chat", "/v1/chat/completions")])
def test_openai_generates_n_per_prompt_with_seeds(api, path):
    with FakeLLM() as server, backend(server, api=api) as b:
        out = b.generate([PROMPT, PROMPT], n=3, max_tokens=20, temperature=0.5, seed=[10, 50], stop=["\n"])
    assert [len(x) for x in out] == [3, 3]
    assert [c.text for c in out[0]] == [fake_description("sport spoon", s) for s in (10, 11, 12)]
    assert [c.text for c in out[1]] == [fake_description("sport spoon", s) for s in (50, 51, 52)]
    assert all(c.tokens == len(c.text.split()) for c in out[0])
    assert {r["path"] for r in server.requests} == {path}
    assert len(server.requests) == 6  # one request per sample (use_n off)
    r = server.requests[0]
    assert r["model"] == "fake" and r["max_tokens"] == 20 and r["stop"] == ["\n"]
    if api == "chat":
        assert r["messages"][0] == {"role": "system", "content": "rules"}
    else:
        assert r["prompt"] == PROMPT.text


def test_openai_use_n_sends_one_request_per_prompt():
    with FakeLLM() as server, backend(server, use_n=True) as b:
        out = b.generate(["Object: wheel\nDescription:"], n=4, seed=3)
    assert len(server.requests) == 1 and server.requests[0]["n"] == 4
    assert [c.text for c in out[0]] == [fake_description("wheel", s) for s in (3, 4, 5, 6)]


def test_openai_retries_500_and_429_then_succeeds():
    with FakeLLM(fail_next=[500, 429, 503]) as server, backend(server, concurrency=1) as b:
        out = b.generate(["Object: shoe\nDescription:"], n=1, seed=0)
    assert out[0][0].text == fake_description("shoe", 0)
    assert len(server.requests) == 4


def test_openai_gives_up_after_max_retries():
    with FakeLLM(fail_next=[500] * 10) as server, backend(server, max_retries=2, concurrency=1) as b:
        with pytest.raises(BackendError, match="after 3 attempts: HTTP 500"):
            b.generate(["Object: shoe"], n=1)
    assert len(server.requests) == 3


def test_openai_does_not_retry_a_bad_request():
    with FakeLLM(fail_next=[400]) as server, backend(server, concurrency=1) as b:
        with pytest.raises(BackendError, match="HTTP 400"):
            b.generate(["Object: shoe"], n=1)
    assert len(server.requests) == 1


def test_openai_retries_a_timeout():
    # The server sleeps longer than the client waits on every request: each attempt times out.
    with FakeLLM(sleep_s=0.6) as server, backend(server, timeout_s=0.2, max_retries=1, concurrency=1) as b:
        with pytest.raises(BackendError, match="timeout"):
            b.generate(["Object: shoe"], n=1)
    assert len(server.requests) == 2


def test_openai_runs_requests_concurrently():
    with FakeLLM(sleep_s=0.2) as server, backend(server, concurrency=4) as b:
        out = b.generate(["Object: a", "Object: b"], n=4, seed=0)
    assert sum(len(x) for x in out) == 8
    assert server.max_active > 1  # requests overlapped in the server


def test_openai_sends_key_from_env_and_never_logs_it(monkeypatch, caplog):
    monkeypatch.setenv("PS_TEST_KEY", "sk-secret-123")
    caplog.set_level(logging.DEBUG)
    with FakeLLM(fail_next=[500]) as server, backend(server, api_key_env="PS_TEST_KEY", concurrency=1) as b:
        b.generate(["Object: shoe"], n=1)
        text = repr(b)
    assert server.headers[0].get("Authorization") == "Bearer sk-secret-123"
    assert "sk-secret" not in caplog.text and "sk-secret" not in text
    assert "retry 1/3" in caplog.text  # the retry was logged, without the key


def test_openai_without_key_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("PS_TEST_NOKEY", raising=False)
    with FakeLLM() as server, backend(server, api_key_env="PS_TEST_NOKEY") as b:
        b.generate(["Object: shoe"], n=1)
    assert "Authorization" not in server.headers[0]


def test_openai_connection_refused_is_a_backend_error():
    with FakeLLM() as server:
        url = server.url
    b = OpenAIBackend(OpenAIConfig(base_url=url, max_retries=1, backoff_s=0.001, timeout_s=1))
    with b, pytest.raises(BackendError, match="connection error"):
        b.generate(["x"], n=1)


def test_vllm_processor_config_builds_without_vllm():
    cfg = VLLMConfig(model_source="google/gemma-3-270m", concurrency=2, batch_size=16,
                     engine_kwargs={"max_model_len": 1024})
    pc = vllm_processor_config(cfg)
    assert pc.model_source == "google/gemma-3-270m"
    assert pc.batch_size == 16 and pc.concurrency == 2
    assert pc.engine_kwargs["max_model_len"] == 1024
    assert not pc.chat_template_stage  # raw few-shot prompts
    params = vllm_sampling_params(32, 0.7, 0.9, 5, ["\n"])
    assert params == {"max_tokens": 32, "temperature": 0.7, "top_p": 0.9, "stop": ["\n"], "seed": 5}


def test_model_ids_and_factory_errors():
    assert model_id(BackendConfig()) == "llama-cpp:gemma-3-270m-q4_k_m"
    assert model_id(BackendConfig(kind="openai", openai=OpenAIConfig(model="m"))) == "openai:m"
    assert model_id(BackendConfig(kind="vllm")) == "vllm:google/gemma-3-270m"
    with pytest.raises(BackendError, match="ray.data.llm"):
        build_backend(BackendConfig(kind="vllm"))
    with pytest.raises(BackendError, match="metadata-only"):
        build_backend(BackendConfig(kind="none"))


def test_seed_list_must_match_prompts():
    with FakeLLM() as server, backend(server) as b:
        with pytest.raises(ValueError, match="2 seeds for 1 prompts"):
            b.generate(["x"], n=1, seed=[1, 2])


def test_llama_cpp_gemma_is_deterministic_per_seed(tmp_path):
    pytest.importorskip("llama_cpp")
    cfg = BackendConfig(llama_cpp=LlamaCppConfig(n_ctx=512, n_threads=1))
    prompt = "Object: wheel\nDescription: A wheel with spokes.\n\nObject: shoe\nDescription:"
    with build_backend(cfg) as b:
        a = b.generate([prompt], n=2, max_tokens=12, temperature=0.8, seed=[7], stop=["\n"])
        again = b.generate([prompt], n=1, max_tokens=12, temperature=0.8, seed=[7], stop=["\n"])
    assert len(a[0]) == 2 and all(c.tokens > 0 for c in a[0])
    assert again[0][0].text == a[0][0].text  # same seed, same text
    assert b.model_id == "llama-cpp:gemma-3-270m-q4_k_m"
    with pytest.raises(BackendError, match="closed"):
        b.generate([prompt], n=1)
