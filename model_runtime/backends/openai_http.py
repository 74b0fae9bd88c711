"""The HTTP side of ``openai:URL``: one client for an OpenAI-compatible server.

URLs (``/v1`` base, credentials never shown), requests with retries and jittered
backoff on 429/503 (``Retry-After`` honoured), one clear message per failure (the API
key scrubbed from every one), and server-sent event streams that a ``with`` block
closes (the server notices the disconnect and stops generating). What to ask for and
what the answers mean is ``openai.py``'s business.
"""

from __future__ import annotations

import json
import logging
import os
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from model_runtime.types import GenerationError, ModelLoadError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 503})


def iter_sse_data(lines: Iterator[str]) -> Iterator[str]:
    """Yield the ``data`` of each server-sent event (multi-line data joined by newlines).

    Comments (``: ping``) and other fields (``event:``, ``id:``, ``retry:``) are skipped;
    an event ends at a blank line (or at the end of the stream).
    """
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
    if data:
        yield "\n".join(data)


def parse_chunk(data: str) -> dict[str, Any] | None:
    """One SSE ``data`` payload → the JSON object, None for ``[DONE]``.

    Raises GenerationError for malformed JSON or an ``error`` object in the stream
    (vLLM reports failures mid-stream that way).
    """
    if data.strip() == "[DONE]":
        return None
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as e:
        raise GenerationError(f"bad server-sent event from the model server: {data[:200]!r}") from e
    if not isinstance(obj, dict):
        raise GenerationError(f"bad server-sent event from the model server: {data[:200]!r}")
    if "error" in obj:
        err = obj["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise GenerationError(f"the model server reported an error mid-stream: {msg}")
    return obj


# --- helpers --------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """``http://host:8000``, ``.../v1``, ``.../v1/`` and ``.../v1/completions`` → ``.../v1``."""
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelLoadError(
            f"openai:{url}: expected an http(s) URL of an OpenAI-compatible server, "
            "e.g. openai:http://127.0.0.1:8000/v1"
        )
    path = parts.path.rstrip("/")
    for tail in ("/completions", "/models"):
        path = path.removesuffix(tail)
    if not path.endswith("/v1"):
        path += "/v1"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def redact_url(url: str) -> str:
    """The URL without user:password, for messages and EngineInfo."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def tls_verify(verify_tls: bool = True, ca_bundle: str = "") -> bool | ssl.SSLContext:
    """What httpx verifies the server's certificate with. ``ca_bundle`` (the caBundle
    setting: a PEM file or a directory of them, e.g. a corporate TLS proxy's CA) is
    trusted on top of the usual CAs (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set,
    else certifi's); without it, httpx's default honours those variables itself."""
    if not verify_tls:
        return False
    if not ca_bundle.strip():
        return True
    path = Path(ca_bundle.strip()).expanduser()
    if not path.exists():
        raise ModelLoadError(f"caBundle {ca_bundle}: no such file or directory")
    import certifi

    env_file, env_dir = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    try:
        if env_file or env_dir:
            ctx = ssl.create_default_context(cafile=env_file or None, capath=env_dir or None)
        else:
            ctx = ssl.create_default_context(cafile=certifi.where())
        if path.is_dir():
            ctx.load_verify_locations(capath=str(path))
        else:
            ctx.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as e:
        raise ModelLoadError(
            f"caBundle {ca_bundle}: not a readable PEM certificate bundle ({e})"
        ) from None
    return ctx


class ServerClient:
    """An ``httpx.Client`` for one server URL, with the API key read from the
    environment variable named by ``api_key_env`` (sent only as a Bearer token)."""

    def __init__(
        self,
        url: str,
        *,
        api_key_env: str = "",
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        verify_tls: bool = True,
        ca_bundle: str = "",
        max_retries: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        transport: httpx.BaseTransport | None = None,
        **_: object,  # other backends' options, from the same settings
    ) -> None:
        self.url = normalize_url(url)
        verify = tls_verify(verify_tls, ca_bundle)
        self.shown = redact_url(self.url)
        self.key_env = api_key_env.strip()
        self._key = ""
        if self.key_env:
            self._key = os.environ.get(self.key_env, "")
            if not self._key:
                raise ModelLoadError(
                    f"apiKeyEnv names the environment variable {self.key_env}, but it is not "
                    "set (or empty) in the environment of phi-lsp; export it before starting "
                    "the editor"
                )
        self.timeout_s = float(timeout_s)
        self._max_retries = max(0, int(max_retries))
        self._backoff_s = float(backoff_s)
        self._max_backoff_s = float(max_backoff_s)
        headers = {"Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, connect=float(connect_timeout_s)),
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def events(self, resp: httpx.Response) -> Iterator[dict[str, Any] | None]:
        """The stream's JSON chunks, None for [DONE]. A server that ignores ``stream``
        and answers with one JSON completion is read as a single chunk."""
        if resp.headers.get("content-type", "").startswith("application/json"):
            try:
                resp.read()
                obj = resp.json()
            except (ValueError, httpx.HTTPError) as e:
                raise GenerationError(
                    f"the model server at {self.shown} sent a completion that is not JSON"
                ) from e
            yield parse_chunk(json.dumps(obj))
            yield None
            return
        for data in iter_sse_data(self.lines(resp)):
            yield parse_chunk(data)

    def lines(self, resp: httpx.Response) -> Iterator[str]:
        try:
            yield from resp.iter_lines()
        except httpx.ReadTimeout:
            raise GenerationError(
                f"the model server at {self.shown} sent nothing for {self.timeout_s:g} s "
                "mid-stream; it may be overloaded or stuck"
            ) from None
        except httpx.HTTPError as e:
            raise GenerationError(
                self.scrub(f"the stream from the model server at {self.shown} broke: {e}")
            ) from None

    def open_stream(
        self, body: dict[str, Any], should_stop: Callable[[], bool] | None
    ) -> StreamCtx:
        return StreamCtx(self, body, should_stop)

    def send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request with retries on 429/503; the response is open (stream=True)."""
        should_stop = kw.pop("should_stop", None)
        url = self.url + path if path.startswith("/") else path
        attempt = 0
        while True:
            try:
                req = self._http.build_request(method, url, **kw)
                resp = self._http.send(req, stream=True)
            except httpx.ConnectTimeout:
                raise GenerationError(
                    f"timed out connecting to the model server at {self.shown}; "
                    "check the URL and that the server is up"
                ) from None
            except httpx.ConnectError as e:
                if "CERTIFICATE_VERIFY_FAILED" in str(e):
                    raise GenerationError(
                        self.scrub(
                            f"the TLS certificate of the model server at {self.shown} is not "
                            f"trusted ({_reason(e)}); behind a TLS proxy, set caBundle (or "
                            "SSL_CERT_FILE) to its CA certificate file"
                        )
                    ) from None
                raise GenerationError(
                    self.scrub(
                        f"cannot connect to the model server at {self.shown} ({_reason(e)}); "
                        "start it, or fix the model setting (openai:URL)"
                    )
                ) from None
            except httpx.TimeoutException:
                raise GenerationError(
                    f"the model server at {self.shown} did not answer within {self.timeout_s:g} s"
                ) from None
            except httpx.HTTPError as e:
                raise GenerationError(
                    self.scrub(f"request to the model server at {self.shown} failed: {e}")
                ) from None
            if resp.status_code < 300:
                return resp
            if resp.status_code < 400:  # redirects are not followed: a POST would be lost
                where = resp.headers.get("location", "?")
                resp.close()
                raise GenerationError(
                    f"the model server at {self.shown} redirects to {where}; use that URL "
                    "in the model setting (openai:URL)"
                )
            if resp.status_code in RETRY_STATUS and attempt < self._max_retries:
                delay = self._delay(attempt, resp.headers.get("retry-after"))
                resp.close()
                attempt += 1
                log.info(
                    "model server busy (HTTP %d); retry %d/%d in %.2f s",
                    resp.status_code,
                    attempt,
                    self._max_retries,
                    delay,
                )
                if _sleep(delay, should_stop):
                    raise Cancelled
                continue
            try:
                resp.read()
                text = resp.text
            except httpx.HTTPError:
                text = ""
            finally:
                resp.close()
            raise GenerationError(self._status_message(resp.status_code, path, text, attempt))

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self._max_backoff_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        base = min(self._max_backoff_s, self._backoff_s * (2**attempt))
        return base * (0.5 + random.random() / 2)  # jitter: editors don't retry in lockstep

    def _status_message(self, status: int, path: str, body: str, retries: int) -> str:
        detail = _error_detail(body)
        where = f"the model server at {self.shown}"
        if status in (401, 403):
            if self.key_env:
                msg = (
                    f"{where} refused the API key from ${self.key_env} (HTTP {status}); "
                    "check the key"
                )
            else:
                msg = (
                    f"{where} wants an API key (HTTP {status}); set apiKeyEnv to the name of "
                    "an environment variable that holds it"
                )
        elif status == 404:
            msg = (
                f"{where} has no {path} (HTTP 404{': ' + detail if detail else ''}); "
                "point openai: at the server's /v1 base URL"
            )
        elif status in RETRY_STATUS:
            msg = f"{where} is overloaded (HTTP {status}) after {retries} retries; try again later"
        elif status >= 500:
            msg = f"{where} failed (HTTP {status}{': ' + detail if detail else ''})"
        else:
            msg = f"{where} rejected the request (HTTP {status}{': ' + detail if detail else ''})"
        return self.scrub(msg)

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def get_json(self, path: str, *, root: bool = False, **kw: Any) -> Any:
        url = self.root() + path if root else path
        method = "POST" if "json" in kw else "GET"
        resp = self.send(method, url, **kw)
        try:
            resp.read()
            return resp.json()
        except (ValueError, httpx.HTTPError) as e:
            raise GenerationError(
                f"the model server at {self.shown} answered {path} with something that is not JSON"
            ) from e
        finally:
            resp.close()

    def root(self) -> str:
        return self.url.removesuffix("/v1")


class Cancelled(Exception):
    """should_stop became true while waiting to retry."""


class StreamCtx:
    """``with`` block around one streaming completion; closing it closes the connection."""

    def __init__(
        self, client: ServerClient, body: dict[str, Any], should_stop: Callable[[], bool] | None
    ) -> None:
        self._client, self._body, self._should_stop = client, body, should_stop
        self._resp: httpx.Response | None = None

    def __enter__(self) -> httpx.Response | None:
        try:
            self._resp = self._client.send(
                "POST", "/completions", json=self._body, should_stop=self._should_stop
            )
        except Cancelled:
            return None
        return self._resp

    def __exit__(self, *exc: object) -> None:
        if self._resp is not None:
            # Closing an unfinished HTTP/1.1 response drops the connection: the server's
            # next write fails and it stops generating for this request.
            self._resp.close()


def _sleep(seconds: float, should_stop: Callable[[], bool] | None) -> bool:
    """Sleep in small steps; True when should_stop fired."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_stop is not None and should_stop():
            return True
        time.sleep(min(0.05, left))
    return False


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text


def _error_detail(body: str) -> str:
    try:
        obj = json.loads(body)
    except (ValueError, TypeError):
        return body.strip()[:200]
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message", obj)))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:200]
    return str(obj)[:200]
