"""Progress of the long first steps: events, the CLI's rendering, tiny's build, the load."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from model_runtime import tiny
from model_runtime.progress import Progress, Reporter, TerminalProgress


def test_reporter_sends_each_whole_percent_once_and_survives_a_broken_consumer() -> None:
    seen: list[Progress] = []
    r = Reporter(seen.append, "download", "downloading x", 1000, unit="B")
    for done in [*range(0, 1000, 3), 1000]:
        r.update(done)
    pcts = [p.percent for p in seen]
    assert pcts == sorted(pcts) and pcts[0] == 0 and pcts[-1] == 100
    assert len(pcts) == len(set(pcts)) == 101

    def broken(_: Progress) -> None:
        raise BrokenPipeError

    Reporter(broken, "load", "loading", 10).update(5)  # no exception


def test_progress_describes_bytes_and_steps() -> None:
    assert Progress("download", "downloading m", 1.2e9, 2.8e9, "B").describe() == (
        "downloading m: 42 % (1.2 GB of 2.8 GB)"
    )
    assert Progress("build", "building", 30, 300, "steps").describe() == (
        "building: 10 % (30/300 steps)"
    )
    assert Progress("load", "loading", 0, None).percent is None


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _feed(bar: TerminalProgress, clock: _Clock | None = None) -> None:
    for i in range(0, 101):  # a download: a second per percent
        bar(Progress("download", "downloading m", i, 100, "B"))
        if clock is not None:
            clock.t += 1.0
    for i in range(0, 11):  # a load: all at once
        bar(Progress("load", "loading m", i, 10, "tensors"))
    bar.close()


def test_terminal_progress_without_a_terminal_writes_a_line_per_step() -> None:
    out = io.StringIO()
    clock = _Clock()
    _feed(TerminalProgress(out, tty=False, clock=clock), clock)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    downloads = [ln for ln in lines if "downloading m" in ln]
    assert len(downloads) == 11  # 0, 10, ..., 100 %
    assert downloads[0].startswith("phi-lsp: downloading m: 0 %")
    assert downloads[-1].startswith("phi-lsp: downloading m: 100 %")
    # A burst (all within a second): its first line and its last.
    loads = [ln for ln in lines if ln.startswith("phi-lsp: loading m")]
    assert loads == [
        "phi-lsp: loading m: 0 % (0/10 tensors)",
        "phi-lsp: loading m: 100 % (10/10 tensors)",
    ]


def test_terminal_progress_on_a_terminal_redraws_one_bar_per_step() -> None:
    out = io.StringIO()
    _feed(TerminalProgress(out, tty=True))
    text = out.getvalue()
    assert text.count("\r") >= 100  # redrawn in place
    finished = [ln.rsplit("\r", 1)[-1] for ln in text.split("\n") if ln]
    assert len(finished) == 2  # one finished bar per step
    assert finished[0].startswith("phi-lsp: [##############################] downloading m: 100 %")
    assert "loading m: 100 %" in finished[1]


def test_building_tiny_reports_increasing_percentages_and_no_library_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHI_LSP_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(tiny.MODEL_RECIPE, "steps", 12)
    seen: list[Progress] = []
    (tmp_path / "out").mkdir()
    tiny.build_tiny(tmp_path / "out", "test", progress=seen.append)
    assert {p.stage for p in seen} == {"build"}
    pcts = [p.percent for p in seen]
    assert pcts[0] == 0 and pcts[-1] == 100 and pcts == sorted(pcts) and len(set(pcts)) == 13
    # 100 % only once the files are written.
    assert (tmp_path / "out" / "model.safetensors").is_file()
    err = capfd.readouterr().err
    assert "Writing model shards" not in err and "%|" not in err


def test_loading_reports_progress_and_prints_no_bar(
    tiny_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from model_runtime.loader import load_model_and_tokenizer

    seen: list[Progress] = []
    load_model_and_tokenizer(str(tiny_dir), device="cpu", progress=seen.append)
    assert seen and {p.stage for p in seen} == {"load"}
    pcts = [p.percent for p in seen if p.percent is not None]
    assert pcts == sorted(pcts) and pcts[-1] == 100 and len(set(pcts)) >= 3, pcts
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err
