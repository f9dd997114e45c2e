"""The OpenAI-compatible generator against httpx's MockTransport (vLLM/Ollama speak this protocol)."""

from __future__ import annotations

import json

import httpx
import pytest

from bot.core.errors import GenerationError
from knowledge.generator import OpenAIGenerator


def sse(*deltas: str) -> bytes:
    lines = [f"data: {json.dumps({'choices': [{'delta': {'content': d}}]})}\n\n" for d in deltas]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


def test_streams_deltas_and_names_the_adapter_as_model():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer k"
        return httpx.Response(200, content=sse("The gateway", " is vpn.acme.example", " [1]."))

    gen = OpenAIGenerator("http://lm/v1", "smol", "k", transport=httpx.MockTransport(handler), max_new_tokens=32)
    messages = [{"role": "user", "content": "hi"}]
    assert "".join(gen.generate(messages)) == "The gateway is vpn.acme.example [1]."
    gen.set_adapter("v3")
    list(gen.generate(messages))
    assert [b["model"] for b in seen] == ["smol", "v3"]
    assert seen[0]["stream"] is True and seen[0]["max_tokens"] == 32


def test_server_errors_become_generation_errors():
    gen = OpenAIGenerator("http://lm/v1", transport=httpx.MockTransport(lambda r: httpx.Response(500, text="boom")))
    with pytest.raises(GenerationError, match="500"):
        list(gen.generate([{"role": "user", "content": "hi"}]))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = OpenAIGenerator("http://lm/v1", transport=httpx.MockTransport(refuse))
    with pytest.raises(GenerationError, match="unreachable"):
        list(down.generate([{"role": "user", "content": "hi"}]))
