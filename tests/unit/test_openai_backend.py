"""Unit tests of the ``openai:URL`` backend against a small local HTTP server.

The server here is a test double for error injection only (429/503 with Retry-After,
500, a stalled stream, a bad key, a server that ignores ``n``): a real engine cannot be
made to produce those on demand. The behaviour against a real engine (llama.cpp's
server) is in tests/e2e/test_remote_llama.py.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from model_runtime.backends.openai import (
    OpenAIEngine,
    iter_sse_data,
    normalize_url,
    parse_chunk,
)
from model_runtime.types import GenerationError, GenerationRequest, ModelLoadError

KEY = "sk-test-5ecret-value-1234"

Route = Callable[["_Handler", dict[str, Any]], None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # body ends when the connection closes

    def log_message(self, *args: object) -> None:
        pass

    def _dispatch(self, body: dict[str, Any]) -> None:
        self.server.requests.append((self.command, self.path, body, dict(self.headers)))
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_json(404, {"error": {"message": "not found"}})
            return
        route(self, body)

    def do_GET(self) -> None:
        self._dispatch({})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self._dispatch(json.loads(self.rfile.read(n) or b"{}"))

    def send_json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_sse(self, chunks: list[dict[str, Any] | str], delay_s: float = 0.0) -> bool:
        """Stream chunks; False when the client hung up (what cancellation must cause)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for c in chunks:
                payload = c if isinstance(c, str) else json.dumps(c)
                self.wfile.write(f"data: {payload}\r\n\r\n".encode())
                self.wfile.flush()
                if delay_s:
                    time.sleep(delay_s)
            self.wfile.write(b"data: [DONE]\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {"/v1/models": _models}
        self.requests: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
        self.events: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def completions(self) -> list[dict[str, Any]]:
        return [b for _, p, b, _ in self.requests if p == "/v1/completions"]


def _models(h: _Handler, _: dict[str, Any]) -> None:
    h.send_json(200, {"object": "list", "data": [{"id": "phi-1", "max_model_len": 2048}]})


def _chunk(text: str, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"choices": [{"index": index, "text": text, "finish_reason": finish}]}


def _tokens(*texts: str, finish: str = "stop") -> list[dict[str, Any] | str]:
    return [*(_chunk(t) for t in texts), _chunk("", finish)]


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _engine(server: _Server, **kw: Any) -> OpenAIEngine:
    kw.setdefault("backoff_s", 0.01)
    return OpenAIEngine(server.url, **kw)


# --- parsing --------------------------------------------------------------------------


def test_sse_parser_skips_comments_and_joins_multiline_data() -> None:
    lines = [": ping", "event: message", 'data: {"a":', "data: 1}", "", "data: [DONE]", ""]
    assert list(iter_sse_data(iter(lines))) == ['{"a":\n1}', "[DONE]"]
    assert parse_chunk('{"a":\n1}') == {"a": 1}
    assert parse_chunk("[DONE]") is None


def test_error_object_in_stream_is_a_generation_error() -> None:
    with pytest.raises(GenerationError, match="out of memory"):
        parse_chunk('{"error": {"message": "CUDA out of memory"}}')
    with pytest.raises(GenerationError, match="bad server-sent event"):
        parse_chunk("{not json")


def test_url_forms_normalize_to_the_v1_base() -> None:
    for u in ("http://h:8000", "http://h:8000/v1/", "http://h:8000/v1/completions"):
        assert normalize_url(u) == "http://h:8000/v1"
    with pytest.raises(ModelLoadError, match="http"):
        normalize_url("h:8000")


# --- streaming, stops, forced prefix ----------------------------------------------------


def test_streams_and_cuts_at_stop_split_across_chunks(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_sse(
        _tokens("    return a", " +", " b\n", "\nde", "f g():")
    )
    eng = _engine(server)
    gen = eng.generate(GenerationRequest(prompt="def f(a, b):", stop=("\n\ndef",)))
    assert gen.text == "    return a + b"
    assert gen.finish_reason == "stop"
    sent = server.completions()[0]
    assert sent["stream"] is True and sent["stop"] == ["\n\ndef"] and sent["model"] == "phi-1"


def test_sampling_and_length_reach_the_server(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_sse(_tokens("x", finish="length"))
    gen = _engine(server).generate(
        GenerationRequest(prompt="p", max_new_tokens=7, temperature=0.8, top_p=0.9, seed=3)
    )
    sent = server.completions()[0]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["seed"]) == (
        7,
        0.8,
        0.9,
        3,
    )
    assert gen.finish_reason == "length"


def test_stop_fn_ends_the_stream_and_the_server_sees_the_hangup(server: _Server) -> None:
    finished: list[bool] = []

    def slow(h: _Handler, b: dict[str, Any]) -> None:
        finished.append(h.send_sse([_chunk(f" t{i}") for i in range(200)], delay_s=0.01))

    server.routes["/v1/completions"] = slow
    gen = _engine(server).generate(
        GenerationRequest(prompt="p", max_new_tokens=200, stop_fn=lambda t: "t3" in t)
    )
    assert gen.text == " t0 t1 t2 t3" and gen.finish_reason == "stop_fn"
    deadline = time.time() + 5
    while not finished and time.time() < deadline:
        time.sleep(0.05)
    assert finished == [False]  # the server's writes failed: it stopped streaming


def test_forced_prefix_taken_from_the_model_when_it_agrees(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_sse(_tokens("\n   ", " return", " 1"))
    gen = _engine(server).generate(GenerationRequest(prompt='"""Doc."""', forced_prefix="\n    "))
    assert gen.text == "\n    return 1"
    assert [b["prompt"] for b in server.completions()] == ['"""Doc."""']


def test_forced_prefix_appended_when_the_model_diverges(server: _Server) -> None:
    def route(h: _Handler, b: dict[str, Any]) -> None:
        if b["prompt"].endswith("\n    "):
            h.send_sse(_tokens("return", " 1"))
        else:
            h.send_sse(_tokens(" # a comment", "\n"))

    server.routes["/v1/completions"] = route
    gen = _engine(server).generate(GenerationRequest(prompt='"""Doc."""', forced_prefix="\n    "))
    assert gen.text == "\n    return 1"
    assert [b["prompt"] for b in server.completions()] == ['"""Doc."""', '"""Doc."""\n    ']


def test_cancel_before_first_token_returns_cancelled(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_sse(_tokens("a", "b"), delay_s=0.05)
    gen = _engine(server).generate(GenerationRequest(prompt="p"), should_stop=lambda: True)
    assert gen.finish_reason == "cancelled"


def test_generate_n_tops_up_when_the_server_ignores_n(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_sse(_tokens(f"s{b.get('seed')}"))
    gens = _engine(server).generate_n(GenerationRequest(prompt="p", seed=10), 3)
    assert [g.text for g in gens] == ["s10", "s11", "s12"]
    assert server.completions()[0]["n"] == 3


def test_generate_n_demultiplexes_choices(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_sse(
        [_chunk("a", index=0), _chunk("b", index=1), _chunk("", "stop", 0), _chunk("", "stop", 1)]
    )
    gens = _engine(server).generate_n(GenerationRequest(prompt="p"), 2)
    assert [g.text for g in gens] == ["a", "b"]
    assert len(server.completions()) == 1


# --- errors and retries -------------------------------------------------------------------


def test_retries_429_honouring_retry_after_then_succeeds(server: _Server) -> None:
    calls: list[float] = []

    def route(h: _Handler, b: dict[str, Any]) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            h.send_json(429, {"error": "busy"}, {"Retry-After": "0.2"})
        else:
            h.send_sse(_tokens("ok"))

    server.routes["/v1/completions"] = route
    gen = _engine(server).generate(GenerationRequest(prompt="p"))
    assert gen.text == "ok" and len(calls) == 3
    assert calls[1] - calls[0] >= 0.18  # waited as the server asked


def test_503_gives_up_after_bounded_retries(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_json(503, {"error": "loading"})
    with pytest.raises(GenerationError, match=r"overloaded \(HTTP 503\) after 2 retries"):
        _engine(server, max_retries=2).generate(GenerationRequest(prompt="p"))
    assert len(server.completions()) == 3


def test_500_is_a_clear_error_and_the_engine_keeps_working(server: _Server) -> None:
    state = {"fail": True}

    def route(h: _Handler, b: dict[str, Any]) -> None:
        if state["fail"]:
            h.send_json(500, {"error": {"message": "kaboom in slot 0"}})
        else:
            h.send_sse(_tokens("fine"))

    server.routes["/v1/completions"] = route
    eng = _engine(server)
    with pytest.raises(GenerationError, match=r"failed \(HTTP 500: kaboom in slot 0\)"):
        eng.generate(GenerationRequest(prompt="p"))
    assert len(server.completions()) == 1  # 500 is not retried
    state["fail"] = False
    assert eng.generate(GenerationRequest(prompt="p")).text == "fine"


def test_stalled_stream_times_out_with_a_clear_error(server: _Server) -> None:
    def stall(h: _Handler, b: dict[str, Any]) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        h.wfile.write(b'data: {"choices": [{"index": 0, "text": "a"}]}\r\n\r\n')
        h.wfile.flush()
        time.sleep(2)

    server.routes["/v1/completions"] = stall
    t0 = time.monotonic()
    with pytest.raises(GenerationError, match=r"sent nothing for 0.5 s"):
        _engine(server, timeout_s=0.5).generate(GenerationRequest(prompt="p"))
    assert time.monotonic() - t0 < 1.8


def test_unreachable_server_fails_at_load_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"cannot connect .* \(connection refused\)"):
        OpenAIEngine(f"http://127.0.0.1:{port}/v1")
    assert time.monotonic() - t0 < 3


def test_not_an_openai_server_is_a_load_error(server: _Server) -> None:
    server.routes["/v1/models"] = lambda h, b: h.send_json(200, {"hello": "world"})
    with pytest.raises(ModelLoadError, match="without a model list"):
        _engine(server)


# --- the API key ----------------------------------------------------------------------------


def _guarded(h: _Handler, b: dict[str, Any]) -> None:
    if h.headers.get("Authorization") != f"Bearer {KEY}":
        # Some servers echo what they got; the engine must still not show the key.
        h.send_json(401, {"error": {"message": f"invalid key {h.headers.get('Authorization')}"}})
    else:
        _models(h, b)


def test_key_from_env_is_sent_as_bearer(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHI_TEST_KEY", KEY)
    server.routes["/v1/models"] = _guarded
    eng = _engine(server, api_key_env="PHI_TEST_KEY")
    assert eng.model == "phi-1"
    assert server.requests[-1][3]["Authorization"] == f"Bearer {KEY}"


def test_wrong_key_is_a_clear_error_that_never_shows_the_key(
    server: _Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-" + KEY[::-1]
    monkeypatch.setenv("PHI_TEST_KEY", wrong)
    server.routes["/v1/models"] = _guarded
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logs included
    with pytest.raises(ModelLoadError) as err:
        _engine(server, api_key_env="PHI_TEST_KEY")
    msg = str(err.value)
    assert "refused the API key from $PHI_TEST_KEY (HTTP 401)" in msg
    assert wrong not in msg and wrong not in caplog.text
    assert wrong not in repr(err.value.__cause__) and err.value.__cause__ is None


def test_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHI_TEST_KEY", raising=False)
    with pytest.raises(ModelLoadError, match="PHI_TEST_KEY.*not set"):
        OpenAIEngine("http://127.0.0.1:9/v1", api_key_env="PHI_TEST_KEY")


def test_no_key_configured_says_how_to_set_one(server: _Server) -> None:
    server.routes["/v1/models"] = _guarded
    with pytest.raises(ModelLoadError, match="set apiKeyEnv"):
        _engine(server)


# --- token counting ---------------------------------------------------------------------------


def test_count_tokens_estimates_without_a_tokenize_endpoint(server: _Server) -> None:
    eng = _engine(server)
    assert eng.count_tokens("x" * 35) == 10
    assert eng.tokenize_endpoint == ""


def test_count_tokens_uses_the_server_tokenizer(server: _Server) -> None:
    server.routes["/extras/tokenize/count"] = lambda h, b: h.send_json(
        200, {"count": len(b["input"].split())}
    )
    eng = _engine(server)
    assert eng.count_tokens("a b c d e f g h i j k l") == 12
    assert eng.tokenize_endpoint == "llama-cpp-python"


def test_stream_cut_before_done_is_an_error_with_the_servers_reason(server: _Server) -> None:
    def route(h: _Handler, b: dict[str, Any]) -> None:
        if b["stream"]:  # llama-cpp-python fails after the 200 header: no data, no [DONE]
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.end_headers()
        else:
            h.send_json(400, {"error": {"message": "maximum context length is 2048 tokens"}})

    server.routes["/v1/completions"] = route
    with pytest.raises(GenerationError, match=r"ended the stream .*HTTP 400: maximum context"):
        _engine(server).generate(GenerationRequest(prompt="p"))


def test_vllm_stop_reason_tells_a_stop_string_from_end_of_text(server: _Server) -> None:
    def route(h: _Handler, b: dict[str, Any]) -> None:
        reason = "\n\n" if b["prompt"] == "a" else None
        h.send_sse(
            [
                {
                    "choices": [
                        {"index": 0, "text": "x", "finish_reason": "stop", "stop_reason": reason}
                    ]
                }
            ]
        )

    server.routes["/v1/completions"] = route
    eng = _engine(server)
    assert eng.generate(GenerationRequest(prompt="a", stop=("\n\n",))).finish_reason == "stop"
    assert eng.generate(GenerationRequest(prompt="b", stop=("\n\n",))).finish_reason == "eos"


def test_a_server_that_ignores_stream_is_read_as_one_completion(server: _Server) -> None:
    server.routes["/v1/completions"] = lambda h, b: h.send_json(
        200, {"choices": [{"index": 0, "text": "    return 1\n\ndef g", "finish_reason": "length"}]}
    )
    gen = _engine(server).generate(GenerationRequest(prompt="p", stop=("\n\ndef",)))
    assert gen.text == "    return 1" and gen.finish_reason == "stop"


def test_a_redirect_names_the_url_to_use(server: _Server) -> None:
    server.routes["/v1/models"] = lambda h, b: h.send_json(
        301, {}, {"Location": "https://phi.example/v1/models"}
    )
    with pytest.raises(ModelLoadError, match="redirects to https://phi.example/v1/models"):
        _engine(server)


def test_a_failing_tokenize_endpoint_falls_back_to_the_estimate(server: _Server) -> None:
    calls = [0]

    def flaky(h: _Handler, b: dict[str, Any]) -> None:
        calls[0] += 1
        if calls[0] == 1:
            h.send_json(200, {"count": 3})  # the probe works
        else:
            h.send_json(500, {"error": "tokenizer crashed"})

    server.routes["/extras/tokenize/count"] = flaky
    eng = _engine(server)
    assert eng.tokenize_endpoint == "llama-cpp-python"
    assert eng.count_tokens("x" * 35) == 10  # estimated, no exception
    assert eng.tokenize_endpoint == ""
