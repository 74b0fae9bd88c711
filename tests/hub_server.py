"""A local Hugging Face hub for tests: serves a directory as a model repo over HTTP.

Point ``HF_ENDPOINT`` at it and ``huggingface_hub`` downloads from it as from the hub.
The routes are the ones ``huggingface_hub`` calls (checked against 2.4):

- ``GET /api/models/{repo}[/revision/{rev}]``: model info (``sha``, ``siblings`` with
  sizes when ``?blobs=true``); unknown repo: 404 with ``X-Error-Code: RepoNotFound``.
- ``GET /api/models/{repo}/tree/{rev}``: the file list (``snapshot_download``, ``hf download``).
- ``HEAD|GET /{repo}/resolve/{rev}/{file}``: small files answered directly with ``ETag``
  (git blob id), ``X-Repo-Commit`` and ``Content-Length``; weights (``*.safetensors``)
  redirected (302) to ``/_blobs/{sha256}`` with ``X-Linked-Etag`` / ``X-Linked-Size``, as
  the hub redirects LFS files to its CDN. ``Range: bytes=N-`` gives 206.

Faults, to test what users meet: ``drop_after`` (file → bytes) sends that many bytes of
the file's first full GET and then closes the connection (an interrupted download);
``chunk``/``delay_s`` pace the body so progress is observable; ``fail_status`` answers
every request with that HTTP status. ``requests`` records (method, path, Range header), ``auth`` the
Authorization headers. It also answers as an HTTP proxy would be asked (absolute URIs),
counted in ``proxied``: point ``HTTP_PROXY`` at it and ``HF_ENDPOINT`` at any host.

Run alone: ``python tests/hub_server.py DIR [--repo ORG/NAME] [--port N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "1234567890abcdef1234567890abcdef12345678"


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, bytes]
    commit: str = COMMIT

    @classmethod
    def from_dir(cls, repo_id: str, directory: Path) -> HubRepo:
        files = {
            p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }
        return cls(repo_id, files)

    def is_lfs(self, name: str) -> bool:
        return name.endswith((".safetensors", ".bin"))

    def git_oid(self, name: str) -> str:
        data = self.files[name]
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()


@dataclass
class HubState:
    repo: HubRepo
    drop_after: dict[str, int] = field(default_factory=dict)
    chunk: int = 64 * 1024
    delay_s: float = 0.0
    fail_status: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)  # Authorization headers seen
    proxied: int = 0  # requests with an absolute URI: sent through it as an HTTP proxy
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _HubHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read .requests
        pass

    @property
    def state(self) -> HubState:
        return self.server.state

    def do_HEAD(self) -> None:
        self._route(body=False)

    def do_GET(self) -> None:
        self._route(body=True)

    # --- routing ------------------------------------------------------------------

    def _route(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        with self.state.lock:
            self.state.requests.append((self.command, path, self.headers.get("Range", "")))
            if self.path.startswith("http://"):
                self.state.proxied += 1
            if self.headers.get("Authorization"):
                self.state.auth.append(self.headers["Authorization"])
        if self.state.fail_status:
            return self._json({"error": "failing on purpose"}, self.state.fail_status, body)
        repo = self.state.repo
        if m := re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+))?", path):
            if m.group(1) != repo.repo_id:
                return self._not_found(body)
            return self._json(self._info(blobs="blobs=" in (urlsplit(self.path).query)), 200, body)
        if m := re.fullmatch(r"/api/models/(.+?)/tree/([^/]+)(?:/(.*))?", path):
            if m.group(1) != repo.repo_id:
                return self._not_found(body)
            tree = [
                {"type": "file", "path": n, "size": len(d), "oid": repo.git_oid(n)}
                | ({"lfs": self._lfs(n)} if repo.is_lfs(n) else {})
                for n, d in repo.files.items()
            ]
            return self._json(tree, 200, body)
        if m := re.fullmatch(r"/_blobs/([0-9a-f]{64})", path):
            name = next((n for n in repo.files if repo.sha256(n) == m.group(1)), None)
            if name is None:
                return self._not_found(body)
            return self._file(name, body, etag=repo.sha256(name))
        prefix = f"/{repo.repo_id}/resolve/"
        if path.startswith(prefix):
            rev, _, name = path[len(prefix) :].partition("/")
            if rev not in ("main", repo.commit) or name not in repo.files:
                return self._not_found(body, code="EntryNotFound")
            if repo.is_lfs(name):
                host = self.headers.get("Host", "127.0.0.1")
                self.send_response(302)
                self.send_header("Location", f"http://{host}/_blobs/{repo.sha256(name)}")
                self.send_header("X-Repo-Commit", repo.commit)
                self.send_header("X-Linked-Etag", f'"{repo.sha256(name)}"')
                self.send_header("X-Linked-Size", str(len(repo.files[name])))
                self.send_header("ETag", f'"{repo.git_oid(name)}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._file(name, body, etag=repo.git_oid(name))
        return self._not_found(body)

    def _info(self, blobs: bool) -> dict[str, object]:
        repo = self.state.repo
        siblings: list[dict[str, object]] = []
        for name in repo.files:
            s: dict[str, object] = {"rfilename": name}
            if blobs:
                s.update(size=len(repo.files[name]), blobId=repo.git_oid(name))
                if repo.is_lfs(name):
                    s["lfs"] = self._lfs(name, "sha256")
            siblings.append(s)
        return {
            "_id": "0" * 24,
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": repo.commit,
            "private": False,
            "gated": False,
            "disabled": False,
            "tags": ["transformers", "safetensors", "phi"],
            "library_name": "transformers",
            "siblings": siblings,
        }

    def _lfs(self, name: str, key: str = "oid") -> dict[str, object]:
        # The tree route calls the hash "oid", model info's siblings call it "sha256".
        repo = self.state.repo
        return {key: repo.sha256(name), "size": len(repo.files[name]), "pointerSize": 134}

    # --- answers ------------------------------------------------------------------

    def _json(self, obj: object, status: int, body: bool) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _not_found(self, body: bool, code: str = "RepoNotFound") -> None:
        data = json.dumps({"error": "Repository Not Found"}).encode()
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", "Repository Not Found")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _file(self, name: str, body: bool, etag: str) -> None:
        st = self.state
        data = st.repo.files[name]
        start = 0
        rng = self.headers.get("Range", "")
        if m := re.fullmatch(r"bytes=(\d+)-", rng.strip()):
            start = min(int(m.group(1)), len(data))
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", st.repo.commit)
        self.send_header("Content-Length", str(len(data) - start))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        drop = None
        with st.lock:
            if not rng and name in st.drop_after and name not in st.dropped:
                drop = st.drop_after[name]
                st.dropped.append(name)
        pos = start
        while pos < len(data):
            end = min(len(data), pos + st.chunk)
            if drop is not None and end >= drop:
                self.wfile.write(data[pos:drop])
                self.wfile.flush()
                self.close_connection = True
                # Abort: no more bytes, the client sees a short body (a dropped connection).
                with contextlib.suppress(OSError):
                    import socket

                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(data[pos:end])
            self.wfile.flush()
            pos = end
            if st.delay_s:
                time.sleep(st.delay_s)


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


@contextlib.contextmanager
def serve(repo: HubRepo, **faults: object) -> Iterator[tuple[str, HubState]]:
    """Run the hub on 127.0.0.1 (a free port) in a thread: yields (endpoint URL, state)."""
    state = HubState(repo, **faults)  # type: ignore[arg-type]
    httpd = _HubHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = state
    t = threading.Thread(target=httpd.serve_forever, name="hub-server", daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--repo", default="phi-lsp-test/tiny")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay-s", type=float, default=0.0)
    args = ap.parse_args()
    state = HubState(HubRepo.from_dir(args.repo, args.directory), delay_s=args.delay_s)
    httpd = _HubHTTPServer(("127.0.0.1", args.port), _Handler)
    httpd.state = state
    print(f"HF_ENDPOINT=http://127.0.0.1:{httpd.server_address[1]} serving {args.repo}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
