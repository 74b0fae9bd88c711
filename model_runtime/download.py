"""Getting a hub model's files into the Hugging Face cache, with progress.

``download(repo_id, progress=...)`` fetches what ``from_pretrained`` needs (config,
tokenizer files, the weights in one format: safetensors when the repo has them) with
``huggingface_hub.hf_hub_download``, one file after another, into the standard cache
(``HF_HOME`` / ``HF_HUB_CACHE``), from ``HF_ENDPOINT``, with ``HF_TOKEN`` and the
usual proxy variables: all of that is huggingface_hub's own handling. Files already
cached are skipped, so a second call costs one metadata request. A connection dropped
mid-file is resumed with a ``Range`` request (huggingface_hub retries up to 5 times
while bytes keep coming); the weights (LFS files) also resume across processes, from a
partial file kept beside their blob (``_fetch_blob``).

Progress: bytes done / total over all missing files, as ``Progress("download", ...)``
events at each whole percent. Failures: ``ModelUnavailable``, whose ``short`` is one
sentence for an editor (no command-line flags) and whose ``details`` are for the log;
``str()`` is the command line's message.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from model_runtime.progress import ProgressFn, Reporter, Stop
from model_runtime.types import ModelLoadError

log = logging.getLogger(__name__)

Reason = Literal["offline", "unreachable", "not-found", "denied", "failed", "cancelled"]
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# What from_pretrained reads besides the weights (top level of the repo only).
_SIDE_SUFFIXES = (".json", ".txt", ".model", ".tiktoken")
# Progress and resume granularity: huggingface_hub reads 10 MiB per chunk, so a dropped
# connection would lose (and a small model would report) up to 10 MiB at a time.
CHUNK_BYTES = 1024 * 1024


class ModelUnavailable(ModelLoadError):
    """A hub model is not cached and cannot be downloaded now."""

    def __init__(self, repo_id: str, reason: Reason, short: str, details: str) -> None:
        self.repo_id, self.reason, self.short, self.details = repo_id, reason, short, details
        super().__init__(_cli_message(repo_id, reason, details))


class Cancelled(Exception):
    """The caller's ``should_stop`` said stop (a newer model setting, a shutdown)."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    on = ("1", "true", "yes", "on")
    return (
        os.environ.get("HF_HUB_OFFLINE", "").lower() in on
        or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in on
    )


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """A quick TCP connect to the hub endpoint (or the proxy that reaches it): with no
    network, huggingface_hub would wait out its own longer timeouts before saying so."""
    url = urlparse(endpoint())
    proxy = _proxy_for(url.scheme, url.hostname or "")
    target = urlparse(proxy) if proxy else url
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        with socket.create_connection((target.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _proxy_for(scheme: str, host: str) -> str:
    import urllib.request

    proxies = urllib.request.getproxies()
    if not proxies.get(scheme) or urllib.request.proxy_bypass(host):
        return ""
    return proxies[scheme]


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> str | None:
    """Path of ``filename`` of ``repo_id`` in the local HF cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, filename, revision=revision)
    except Exception:  # a malformed id: treated as not cached
        return None
    return hit if isinstance(hit, str) else None


def is_cached(repo_id: str) -> bool:
    """config.json and weights of ``repo_id`` are in the cache (the default revision)."""
    return cached_file(repo_id, "config.json") is not None and any(
        cached_file(repo_id, f) for f in WEIGHT_FILES
    )


def wanted_files(names: list[str]) -> list[str]:
    """The files ``from_pretrained`` needs: top-level config/tokenizer files and the
    weights in one format (safetensors when present, else PyTorch .bin)."""
    top = [n for n in names if "/" not in n]
    safetensors = [n for n in top if n.endswith(".safetensors")]
    if safetensors:
        weights = safetensors
    else:
        weights = [n for n in top if n.startswith("pytorch_model") and n.endswith(".bin")]
    side = [n for n in top if n.endswith(_SIDE_SUFFIXES)]
    if weights is safetensors:
        side = [n for n in side if not n.startswith("pytorch_model")]
    else:
        side = [n for n in side if not n.startswith("model.safetensors")]
    return sorted(set(side) | set(weights))


@dataclass
class _FileProgress:
    """A tqdm stand-in handed to hf_hub_download: adds each chunk to the overall count."""

    add: Callable[[int], None]

    def __call__(self, *args: Any, **kwargs: Any) -> _FileProgress:
        return self  # hf_hub_download calls tqdm_class(...): one instance per download

    def __enter__(self) -> _FileProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float | None = 1) -> None:
        self.add(int(n or 0))  # negative when a resume restarts the file from 0

    def close(self) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *a, **k: None


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Fetch ``repo_id`` into the HF cache (missing files only); return the snapshot
    directory. Raises ModelUnavailable (with ``short`` and ``details``)."""
    if offline():
        raise ModelUnavailable(
            repo_id,
            "offline",
            f"{repo_id} is not downloaded yet, and offline mode is on (HF_HUB_OFFLINE).",
            "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)",
        )
    if not hub_reachable():
        raise ModelUnavailable(
            repo_id,
            "unreachable",
            f"{repo_id} is not downloaded yet, and the Hugging Face hub cannot be reached.",
            f"the hub ({endpoint()}) cannot be reached",
        )
    try:
        return _download(repo_id, revision, progress, should_stop)
    except ModelUnavailable:
        raise
    except (Cancelled, Stop):
        raise ModelUnavailable(
            repo_id, "cancelled", f"The download of {repo_id} was stopped.", "cancelled"
        ) from None
    except Exception as e:
        raise _classify(repo_id, e) from e


def _download(
    repo_id: str,
    revision: str | None,
    progress: ProgressFn | None,
    should_stop: Callable[[], bool] | None,
) -> Path:
    from huggingface_hub import HfApi, constants, hf_hub_download

    if getattr(constants, "DOWNLOAD_CHUNK_SIZE", 0) > CHUNK_BYTES:
        constants.DOWNLOAD_CHUNK_SIZE = CHUNK_BYTES
    message = f"downloading {repo_id}"
    reporter = Reporter(progress, "download", message, None, unit="B")
    reporter.update(0)
    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    commit = info.sha or revision or "main"
    sizes = {s.rfilename: (s.size or 0) for s in info.siblings or []}
    large = {s.rfilename for s in info.siblings or [] if s.lfs is not None}
    files = wanted_files(list(sizes))
    if not any(f.endswith((".safetensors", ".bin")) for f in files):
        raise ModelUnavailable(
            repo_id,
            "not-found",
            f"{repo_id} has no model weights (safetensors or .bin) on the hub.",
            f"files on the hub: {', '.join(sorted(sizes)) or 'none'}",
        )
    missing = [f for f in files if cached_file(repo_id, f, revision=commit) is None]
    if missing:
        _remove_stale_partials(repo_id)
    total = sum(sizes[f] for f in missing)
    log.info(
        "downloading %s (%s) from %s: %d files, %d bytes (%d already cached)",
        repo_id,
        commit[:12],
        endpoint(),
        len(missing),
        total,
        len(files) - len(missing),
    )
    done = 0

    def add(n: int) -> None:
        nonlocal done
        if should_stop is not None and should_stop():
            raise Cancelled()
        done += n
        reporter.update(done, total=total or None)

    reporter.update(0, total=total or None)
    for name in missing:
        before = done
        if name in large:  # the weights: resumable across processes (see _fetch_blob)
            _fetch_blob(repo_id, name, commit, add)
        path = hf_hub_download(repo_id, name, revision=commit, tqdm_class=_FileProgress(add))  # type: ignore[call-overload]
        # A file served without a length (or served again from 0 after a resume the
        # server ignored) is counted by its known size once finished.
        done = before + sizes[name]
        reporter.update(done, total=total or None)
        log.debug("downloaded %s", path)
    if revision != commit:  # a branch or tag: point its ref at what was fetched
        _write_ref(repo_id, revision or "main", commit)
    snapshot = Path(
        cached_file(repo_id, "config.json", revision=commit) or _snapshot_dir(repo_id, commit)
    ).parent
    reporter.update(total or 1, total=total or 1)
    return snapshot


def _remove_stale_partials(repo_id: str, max_age_s: float = 600.0) -> None:
    """Partial files a killed download left (huggingface_hub names each download's
    file uniquely and cannot resume another process's): a 2.8 GB model would leave
    gigabytes each time an editor closes mid-download. One untouched for ``max_age_s``
    is no other process's live download."""
    import time

    from huggingface_hub import constants

    blobs = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs"
    now = time.time()
    for f in blobs.glob("*.incomplete"):
        try:
            if now - f.stat().st_mtime > max_age_s:
                f.unlink()
                log.info("removed a stale partial download: %s", f.name)
        except OSError:
            pass


def _fetch_blob(repo_id: str, name: str, commit: str, add: Callable[[int], None]) -> None:
    """Download a large file into its cache blob, resuming what an earlier process
    left (an editor closed mid-download): huggingface_hub resumes only within one call
    and starts a killed download over. The partial file has a fixed name beside the
    blob (``<etag>.phi-lsp-part``) and a lock, so two processes never write it at once;
    ``hf_hub_download`` then finds the blob and only links it into the snapshot."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import get_hf_file_metadata, hf_hub_url, http_get
    from huggingface_hub.utils import build_hf_headers

    meta = get_hf_file_metadata(hf_hub_url(repo_id, name, revision=commit))
    if not meta.etag or meta.size is None:
        return  # nothing to resume against: hf_hub_download does it all
    blobs = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    blob = blobs / meta.etag
    part = blobs / f"{meta.etag}.phi-lsp-part"
    with open(blobs / f"{meta.etag}.phi-lsp-lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock (one process at a time, as a rule)
            pass
        if blob.exists():
            return
        have = part.stat().st_size if part.exists() else 0
        if have > meta.size:  # not this file's beginning after all
            part.unlink()
            have = 0
        if have:
            log.info("resuming %s at %d of %d bytes", name, have, meta.size)
            add(have)
        with open(part, "ab") as f:
            http_get(
                meta.location,
                f,
                resume_size=have,
                headers=build_hf_headers(),
                expected_size=meta.size,
                tqdm_class=_FileProgress(add),  # type: ignore[arg-type]
            )
        os.replace(part, blob)


def _write_ref(repo_id: str, revision: str, commit: str) -> None:
    """refs/<revision> → commit, as snapshot_download leaves it: offline, the cache
    finds the files by the branch name (hf_hub_download by commit does not write it)."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs"
    ref = folder / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)


def _snapshot_dir(repo_id: str, commit: str) -> str:
    from huggingface_hub import constants

    folder = f"models--{repo_id.replace('/', '--')}"
    return os.path.join(constants.HF_HUB_CACHE, folder, "snapshots", commit, "config.json")


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


_NETWORK_NAMES = {
    "ConnectError",
    "ConnectTimeout",
    "ConnectionError",
    "ReadTimeout",
    "ReadError",
    "TimeoutException",
    "RemoteProtocolError",
    "ProxyError",
    "OfflineModeIsEnabled",
}


def _classify(repo_id: str, e: Exception) -> ModelUnavailable:
    """One short sentence for the editor, the library's own words for the log."""
    chain = _chain(e)
    names = {t.__name__ for x in chain for t in type(x).__mro__}
    status = next(
        (
            getattr(getattr(x, "response", None), "status_code", None)
            for x in chain
            if getattr(getattr(x, "response", None), "status_code", None)
        ),
        None,
    )
    details = f"{type(e).__name__}: {e}"
    if "GatedRepoError" in names or status in (401, 403):
        return ModelUnavailable(
            repo_id,
            "denied",
            f"The hub refused to send {repo_id}: it needs an access token (HF_TOKEN).",
            details,
        )
    if "RepositoryNotFoundError" in names or "RevisionNotFoundError" in names or status == 404:
        return ModelUnavailable(
            repo_id, "not-found", f"{repo_id} was not found on the Hugging Face hub.", details
        )
    if names & _NETWORK_NAMES or any(isinstance(x, (ConnectionError, TimeoutError)) for x in chain):
        return ModelUnavailable(
            repo_id,
            "unreachable",
            f"The download of {repo_id} failed: the connection to the hub was lost.",
            details,
        )
    if any(isinstance(x, OSError) and x.errno == 28 for x in chain):  # ENOSPC
        return ModelUnavailable(
            repo_id, "failed", f"The download of {repo_id} failed: the disk is full.", details
        )
    return ModelUnavailable(
        repo_id, "failed", f"The download of {repo_id} failed; the log has the details.", details
    )


def _cli_message(repo_id: str, reason: Reason, details: str) -> str:
    """The command line's version: what happened and what to type."""
    from huggingface_hub import constants

    cache = constants.HF_HUB_CACHE
    if reason in ("offline", "unreachable"):
        return (
            f"the weights of {repo_id} are not in the local Hugging Face cache ({cache}) and "
            f"{details}. Get them once with `phi-lsp model download {repo_id}` (or "
            f"`hf download {repo_id}`) where there is network, or pass a directory saved with "
            "save_pretrained (--model /path/to/model). `--model tiny` works offline."
        )
    if reason == "denied":
        return (
            f"the hub refused to send {repo_id} ({details}); accept its terms on the hub and "
            "set HF_TOKEN to an access token"
        )
    if reason == "not-found":
        return f"{repo_id} was not found on the hub ({endpoint()}): {details}"
    if reason == "cancelled":
        return f"the download of {repo_id} was stopped"
    return f"the download of {repo_id} into {cache} failed: {details}"
