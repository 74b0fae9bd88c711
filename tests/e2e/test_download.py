"""Getting a hub model: the real CLI and loader against a local hub (tests/hub_server.py).

``HF_ENDPOINT`` points at a hub served by the test, with the ``tiny`` model's files as
``phi-lsp-test/tiny``; ``HF_HOME`` is a fresh directory, so every download is real:
huggingface_hub's own routes (model info, HEAD + GET resolve, the LFS redirect,
``Range`` resumes) into the standard cache layout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from hub_server import COMMIT, HubRepo, serve  # noqa: E402

REPO = "phi-lsp-test/tiny"
ADD = 'def add(a, b):\n    """Return the sum of a and b.\n\n    >>> add(2, 3)\n    5\n    """\n'


@pytest.fixture(scope="module")
def tiny_repo(tiny_dir: Path) -> HubRepo:
    return HubRepo.from_dir(REPO, tiny_dir)


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        PHI_LSP_CACHE_DIR=os.environ.get("PHI_LSP_CACHE_DIR", ""),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    if not env["PHI_LSP_CACHE_DIR"]:
        del env["PHI_LSP_CACHE_DIR"]
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phi_lsp", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _percents(stderr: str) -> list[int]:
    return [int(m) for m in re.findall(r"downloading phi-lsp-test/tiny: (\d+) %", stderr)]


def test_model_download_gets_the_files_with_progress_and_resumes_a_dropped_connection(
    tmp_path: Path, tiny_repo: HubRepo
) -> None:
    weights = len(tiny_repo.files["model.safetensors"])
    assert weights > 3 * 1024 * 1024, "the test needs a weights file of several chunks"
    drop_at = weights // 2
    with serve(
        # ~5 s in all: lines come at most once a second without a terminal.
        tiny_repo,
        drop_after={"model.safetensors": drop_at},
        chunk=128 * 1024,
        delay_s=0.15,
    ) as (url, hub):
        env = _env(tmp_path, url, HF_TOKEN="hf_test_token_123")
        r = _run(["model", "download", REPO], env)
        assert r.returncode == 0, r.stderr[-3000:]
        snapshot = Path(r.stdout.strip())
        # The standard cache layout, under HF_HOME.
        want = tmp_path / "hf" / "hub" / "models--phi-lsp-test--tiny" / "snapshots" / COMMIT
        assert snapshot == want
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            assert (snapshot / name).read_bytes() == tiny_repo.files[name], name
        # Not a terminal: one line per step, percentages increasing to 100.
        pcts = _percents(r.stderr)
        assert pcts and pcts[-1] == 100, r.stderr
        assert pcts == sorted(pcts) and len(set(pcts)) >= 4, pcts
        assert "\r" not in r.stderr
        # The connection was dropped mid-file and the download resumed where it stopped.
        assert hub.dropped == ["model.safetensors"]
        ranges = [rng for (m, p, rng) in hub.requests if m == "GET" and rng]
        assert len(ranges) == 1, hub.requests
        resumed_at = int(re.fullmatch(r"bytes=(\d+)-", ranges[0]).group(1))  # type: ignore[union-attr]
        assert 0 < resumed_at <= drop_at
        assert drop_at - resumed_at <= 1024 * 1024  # at most one chunk read again
        # HF_TOKEN reaches the hub.
        assert "Bearer hf_test_token_123" in hub.auth

        # A second run finds everything cached: no file is fetched again.
        hub.requests.clear()
        r2 = _run(["model", "download", REPO], env)
        assert r2.returncode == 0, r2.stderr[-2000:]
        assert Path(r2.stdout.strip()) == snapshot
        assert not [p for (m, p, _) in hub.requests if m == "GET" and "/resolve/" in p]

    # Offline afterwards, the downloaded model loads and completes from the cache.
    demo = tmp_path / "demo.py"
    demo.write_text(ADD)
    offline = _env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1")
    r3 = _run(["complete", str(demo), "--model", REPO, "--json"], offline)
    assert r3.returncode == 0, r3.stderr[-2000:]
    out = json.loads(r3.stdout)
    assert out["completions"] and "return" in out["completions"][0]["text"]


def test_loading_an_uncached_hub_model_downloads_it_reporting_progress(
    tmp_path: Path, tiny_repo: HubRepo
) -> None:
    code = (
        "import json, sys\n"
        "from model_runtime import load_engine\n"
        "events = []\n"
        "e = load_engine(sys.argv[1], device='cpu', progress=events.append)\n"
        "print(json.dumps([[p.stage, p.percent, p.message] for p in events]))\n"
        "print(e.info.source)\n"
    )
    with serve(tiny_repo, chunk=256 * 1024) as (url, _hub):
        p = subprocess.run(
            [sys.executable, "-W", "error::FutureWarning", "-c", code, REPO],
            cwd=ROOT,
            env=_env(tmp_path, url),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    events = json.loads(lines[0])
    stages = [s for s, _, _ in events]
    # Download first, then load; each stage's percentages increase and end at 100.
    assert stages.index("load") > stages.index("download")
    assert set(stages) == {"download", "load"}
    for stage in ("download", "load"):
        pcts = [pct for s, pct, _ in events if s == stage and pct is not None]
        assert pcts == sorted(pcts) and pcts[-1] == 100, (stage, pcts)
    dl = [pct for s, pct, _ in events if s == "download" and pct is not None]
    assert len(set(dl)) >= 3, dl
    assert lines[1] == f"{REPO} (Hugging Face cache)"
    assert "Loading weights" not in p.stderr and "Fetching" not in p.stderr


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("offline", "offline mode is on"),
        ("unreachable", "cannot be reached"),
    ],
)
def test_no_hub_is_a_short_clear_failure(tmp_path: Path, how: str, words: str) -> None:
    extra = {"HF_HUB_OFFLINE": "1"} if how == "offline" else {}
    r = _run(["model", "download", REPO], _env(tmp_path, "http://127.0.0.1:9", **extra), timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert words in r.stderr and "`--model tiny` works offline" in r.stderr
    assert "Traceback" not in r.stderr
    # The editor's version: one short sentence, no command-line flags.
    code = (
        "from model_runtime.download import download, ModelUnavailable\n"
        "try:\n    download('phi-lsp-test/tiny')\n"
        "except ModelUnavailable as e:\n    print(e.reason); print(e.short)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(tmp_path, "http://127.0.0.1:9", **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    reason, short = p.stdout.splitlines()
    assert reason == how
    assert len(short) < 200 and "--" not in short and REPO in short


def test_a_repo_the_hub_does_not_have_is_named(tmp_path: Path, tiny_repo: HubRepo) -> None:
    with serve(tiny_repo) as (url, _hub):
        r = _run(["model", "download", "someone/missing-model"], _env(tmp_path, url), timeout=60)
    assert r.returncode == 1
    assert "someone/missing-model was not found on the hub" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_failing_hub_is_a_failed_download_not_a_crash(tmp_path: Path, tiny_repo: HubRepo) -> None:
    with serve(tiny_repo, fail_status=500) as (url, _hub):
        r = _run(["model", "download", REPO], _env(tmp_path, url), timeout=120)
    assert r.returncode == 1
    assert "download of phi-lsp-test/tiny" in r.stderr and "Traceback" not in r.stderr


def test_complete_on_a_first_run_shows_the_download_on_stderr(
    tmp_path: Path, tiny_repo: HubRepo
) -> None:
    demo = tmp_path / "demo.py"
    demo.write_text(ADD)
    with serve(tiny_repo, chunk=128 * 1024, delay_s=0.1) as (url, _hub):
        r = _run(["complete", str(demo), "--model", REPO, "--json"], _env(tmp_path, url))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["completions"]
    pcts = _percents(r.stderr)  # a line per step: stderr is not a terminal here
    assert pcts and pcts == sorted(pcts) and pcts[-1] == 100, r.stderr
    # The second run finds it cached: nothing is downloaded again.
    rerun = _run(["complete", str(demo), "--model", REPO, "--json"], _env(tmp_path, url))
    assert rerun.returncode == 0 and not _percents(rerun.stderr), rerun.stderr


def test_a_superseded_download_stops_and_keeps_its_bytes_for_later(
    tmp_path: Path, tiny_repo: HubRepo
) -> None:
    code = (
        "import sys\n"
        "from model_runtime.download import download, ModelUnavailable\n"
        "from model_runtime.progress import Stop\n"
        "def fn(p):\n"
        "    if (p.percent or 0) >= 40:\n"
        "        raise Stop()\n"
        "try:\n    download(sys.argv[1], progress=fn)\n"
        "except ModelUnavailable as e:\n    print(e.reason)\n"
    )
    with serve(tiny_repo, chunk=64 * 1024, delay_s=0.02) as (url, hub):
        p = subprocess.run(
            [sys.executable, "-c", code, REPO],
            cwd=ROOT,
            env=_env(tmp_path, url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert p.stdout.strip() == "cancelled", p.stderr[-2000:]
    files = [f.name for f in (tmp_path / "hf").rglob("*") if f.is_file()]
    assert "model.safetensors" not in files and not [f for f in files if "incomplete" in f]
    # What came is kept (the next download resumes there), and is only a part.
    (part,) = [f for f in (tmp_path / "hf").rglob("*.phi-lsp-part")]
    assert 0 < part.stat().st_size < len(tiny_repo.files["model.safetensors"])


def test_model_download_on_a_terminal_draws_a_bar(tmp_path: Path, tiny_repo: HubRepo) -> None:
    import pty

    master, slave = pty.openpty()
    with serve(tiny_repo, chunk=128 * 1024, delay_s=0.01) as (url, _hub):
        p = subprocess.Popen(
            [sys.executable, "-m", "phi_lsp", "model", "download", REPO],
            cwd=ROOT,
            env=_env(tmp_path, url),
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        chunks: list[bytes] = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        out, _ = p.communicate(timeout=120)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert p.returncode == 0, screen[-2000:]
    assert out.decode().strip().endswith(COMMIT)
    # Redrawn in place (\r), a bar that fills, finished with a newline.
    assert screen.count("\r") >= 5
    assert "[##############################] downloading phi-lsp-test/tiny: 100 %" in screen
    assert "\n" in screen.split("100 %", 1)[1]


def test_the_download_goes_through_the_configured_proxy(tmp_path: Path, tiny_repo: HubRepo) -> None:
    # The hub's host does not resolve: only the proxy (HTTP_PROXY) can reach it.
    with serve(tiny_repo) as (url, hub):
        env = _env(tmp_path, "http://hub.invalid", HTTP_PROXY=url, http_proxy=url)
        env.update(NO_PROXY="", no_proxy="")
        r = _run(["model", "download", REPO], env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (Path(r.stdout.strip()) / "model.safetensors").read_bytes() == tiny_repo.files[
        "model.safetensors"
    ]
    assert hub.proxied >= 4  # model info, HEAD and GET of each file: all via the proxy


def test_partial_files_of_a_killed_download_are_cleaned_up(
    tmp_path: Path, tiny_repo: HubRepo
) -> None:
    blobs = tmp_path / "hf" / "hub" / "models--phi-lsp-test--tiny" / "blobs"
    blobs.mkdir(parents=True)
    stale, live = blobs / "abc.1234abcd.incomplete", blobs / "abc.5678abcd.incomplete"
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 1000)
    os.utime(stale, (0, 0))  # untouched for ages: a killed download's
    with serve(tiny_repo) as (url, _hub):
        r = _run(["model", "download", REPO], _env(tmp_path, url), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not stale.exists() and live.exists()  # a fresh one may be another process's


def test_a_download_killed_midway_resumes_in_the_next_process(
    tmp_path: Path, tiny_repo: HubRepo
) -> None:
    """The editor closed mid-download: the next start goes on from the bytes it has."""
    import signal
    import time

    weights = len(tiny_repo.files["model.safetensors"])
    blobs = tmp_path / "hf" / "hub" / "models--phi-lsp-test--tiny" / "blobs"
    with serve(tiny_repo, chunk=64 * 1024, delay_s=0.1) as (url, hub):
        env = _env(tmp_path, url)
        p = subprocess.Popen(
            [sys.executable, "-m", "phi_lsp", "model", "download", REPO],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:  # kill it once a quarter of the weights is on disk
            parts = list(blobs.glob("*.phi-lsp-part")) if blobs.exists() else []
            if parts and parts[0].stat().st_size >= weights // 4:
                break
            assert p.poll() is None and time.monotonic() < deadline, "no partial file appeared"
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        have = parts[0].stat().st_size
        hub.requests.clear()
        hub.delay_s = 0.0
        r = _run(["model", "download", REPO], env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    snapshot = Path(r.stdout.strip())
    assert (snapshot / "model.safetensors").read_bytes() == tiny_repo.files["model.safetensors"]
    ranges = [rng for (m, path, rng) in hub.requests if m == "GET" and "/_blobs/" in path]
    assert ranges == [f"bytes={have}-"], hub.requests
    assert not list(blobs.glob("*.phi-lsp-part"))
