"""``openai:https://...`` behind a TLS proxy: the ``caBundle`` setting and SSL_CERT_FILE.

A local HTTPS server with a certificate from a CA made here (openssl CLI), as a
corporate proxy's CA would be: unknown to certifi, so the connection is refused until
that CA is trusted through ``ca_bundle`` or ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_openai_backend import _chunk, _Server

from model_runtime.backends.openai import OpenAIEngine
from model_runtime.types import GenerationRequest, ModelLoadError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem (a self-made CA) and server.pem/server.key (127.0.0.1, signed by it)."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=Test Corp Proxy CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem",
             cwd=d)  # fmt: skip
    return d


@pytest.fixture
def tls_server(pki: Path) -> Iterator[_Server]:
    srv = _Server()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.routes["/v1/completions"] = lambda h, body: h.send_sse(
        [_chunk("\n    return a + b"), _chunk("", "stop")]
    )
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Server) -> str:
    return srv.url.replace("http://", "https://")


def _generate(engine: OpenAIEngine) -> str:
    req = GenerationRequest(prompt='def add(a, b):\n    """Sum."""', max_new_tokens=8)
    try:
        return engine.generate(req).text
    finally:
        engine.close()


def test_an_unknown_ca_is_refused_with_a_hint_at_ca_bundle(
    tls_server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(ModelLoadError, match="not trusted.*caBundle"):
        OpenAIEngine(_url(tls_server), max_retries=0)


def test_ca_bundle_trusts_the_proxy_ca(
    tls_server: _Server, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    engine = OpenAIEngine(_url(tls_server), ca_bundle=str(pki / "ca.pem"))
    assert _generate(engine) == "\n    return a + b"


def test_ssl_cert_file_trusts_the_proxy_ca(
    tls_server: _Server, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    engine = OpenAIEngine(_url(tls_server))
    assert _generate(engine) == "\n    return a + b"


@pytest.mark.parametrize("what", ["missing", "not-pem"])
def test_a_bad_ca_bundle_is_a_clear_load_error(tmp_path: Path, what: str) -> None:
    path = tmp_path / "ca.pem"
    if what == "not-pem":
        path.write_text("this is not a certificate\n")
    with pytest.raises(ModelLoadError, match=r"caBundle .*ca\.pem: (no such|not a readable PEM)"):
        OpenAIEngine("https://127.0.0.1:9/v1", ca_bundle=str(path))


def test_the_cli_takes_ca_bundle(tls_server: _Server, pki: Path) -> None:
    import json
    import os
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    args = [sys.executable, "-m", "phi_lsp", "model", "info", f"openai:{_url(tls_server)}"]
    bad = subprocess.run([*args, "--json"], cwd=root, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "caBundle" in json.loads(bad.stdout)["error"]
    ok = subprocess.run(
        [*args, "--json", "--ca-bundle", str(pki / "ca.pem")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["model"] == "phi-1"
