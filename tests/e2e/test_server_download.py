"""First run in an editor: the real server over stdio, the model from a local hub.

The hub is tests/hub_server.py serving the ``tiny`` model's files as
``phi-lsp-test/tiny`` (``HF_ENDPOINT``), with a fresh ``HF_HOME``: the server downloads
for real and the client sees ``$/progress`` and ``phiLsp/status``. Offline, the client
gets one short message with actions; choosing the tiny demo model gives completions
without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from test_server_e2e import ADD_CURSOR, ADD_SOURCE, CAPS, doc_uri, server

REPO = "phi-lsp-test/tiny"
USE_TINY = "Use the tiny demo model"


def _hub_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(
        # server() lays this over os.environ, where the tests' default is offline.
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


def _reports(client: Any) -> list[list[Any]]:
    return [list(r) for r in client.progress_reports.values()]


async def test_the_editor_sees_the_download_with_increasing_percentages(
    tmp_path: Path, local_hub: tuple[str, Any]
) -> None:
    url, hub = local_hub
    async with server(
        tmp_path, {"model": REPO, "maxNewTokens": 24}, env=_hub_env(tmp_path, url)
    ) as s:
        await s.ready(timeout=180)
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        items = await s.inline(uri, ADD_CURSOR, timeout=120)
        assert items and items[0].insert_text.strip()
    assert any(p.endswith("/model.safetensors") or "/_blobs/" in p for _, p, _ in hub.requests)
    # phiLsp/status: starting/loading → downloading N % (increasing) → loading → ready.
    states = [x["state"] for x in s.statuses]
    assert "downloading" in states and states[-1] == "ready"
    pcts = [x["percent"] for x in s.statuses if x["state"] == "downloading" and "percent" in x]
    assert pcts == sorted(pcts) and pcts[-1] == 100 and len(set(pcts)) >= 5, pcts
    assert states.index("downloading") < len(states) - 1 - states[::-1].index("loading")
    # $/progress: the download's token begins, reports increasing percentages, ends.
    download = [r for r in _reports(s.client) if any("downloading" in (v.message or "") for v in r)]
    assert len(download) == 1
    kinds = [v.kind for v in download[0]]
    assert kinds[0] == "begin" and kinds[-1] == "end"
    seen = [v.percentage for v in download[0] if v.kind != "end" and v.percentage is not None]
    assert seen == sorted(seen) and seen[-1] == 100 and len(set(seen)) >= 5, seen
    # The load after it is a token of its own, its percentages increasing too.
    loading = [r for r in _reports(s.client) if any("loading " in (v.message or "") for v in r)]
    for r in loading:
        seen = [v.percentage for v in r if v.kind != "end" and v.percentage is not None]
        assert seen == sorted(seen)
    assert not s.messages(types.MessageType.Error)


@pytest.mark.parametrize("how", ["offline", "unreachable"])
async def test_offline_says_so_briefly_and_the_tiny_model_is_one_click_away(
    tmp_path: Path, tiny_dir: Path, how: str
) -> None:
    extra = {"HF_HUB_OFFLINE": "1"} if how == "offline" else {}
    env = _hub_env(tmp_path, "http://127.0.0.1:9", **extra)
    caps = types.ClientCapabilities(
        text_document=CAPS.text_document,
        workspace=CAPS.workspace,
        window=types.WindowClientCapabilities(
            work_done_progress=True,
            show_document=types.ShowDocumentClientCapabilities(support=True),
        ),
    )
    async with server(
        tmp_path,
        {"model": "microsoft/phi-1", "maxNewTokens": 24},
        env=env,
        capabilities=caps,
    ) as s:
        s.choice = USE_TINY
        await s.until(lambda: s.requests, 60, "the failed load's message")
        # One message, short, in the editor's words, with the actions.
        assert len(s.requests) == 1
        req = s.requests[0]
        assert req.type == types.MessageType.Error
        assert len(req.message) < 200 and "--" not in req.message, req.message
        assert "microsoft/phi-1" in req.message and "pip install" not in req.message
        titles = [a.title for a in req.actions or []]
        assert titles[0] == USE_TINY and "Show log" in titles
        # Chosen: tiny loads in the same session, and completes.
        await s.until(
            lambda: [x for x in s.statuses if x["state"] == "ready" and x["model"] == "tiny"],
            300,
            "tiny ready",
        )
        uri = doc_uri(tmp_path)
        s.open(uri, ADD_SOURCE)
        items = await s.inline(uri, ADD_CURSOR, timeout=120)
        assert items and items[0].insert_text.strip()
        # An unrelated settings change keeps tiny (the configured model still fails).
        n = len(s.statuses)
        s.client.set_configuration({"model": "microsoft/phi-1", "verify": "off"}, section="phiLsp")
        s.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
        items = await s.inline(uri, ADD_CURSOR, timeout=120)
        assert items and items[0].insert_text.strip()
        assert all(x["model"] == "tiny" for x in s.statuses[n:])
        # No CPU warning for tiny, and still one error message in all.
        assert not [m for m in s.messages(types.MessageType.Warning) if "CPU" in m]
        assert len(s.messages(types.MessageType.Error)) == 1
    # The details went to the log.
    log = (tmp_path / "server.log").read_text()
    assert "could not load microsoft/phi-1" in log and "phi-lsp model download" in log


async def test_show_log_opens_the_log_file_where_the_client_can_show_documents(
    tmp_path: Path,
) -> None:
    env = _hub_env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1")
    caps = types.ClientCapabilities(
        text_document=CAPS.text_document,
        workspace=CAPS.workspace,
        window=types.WindowClientCapabilities(
            show_document=types.ShowDocumentClientCapabilities(support=True)
        ),
    )
    async with server(tmp_path, {"model": "microsoft/phi-1"}, env=env, capabilities=caps) as s:
        s.choice = "Show log"
        await s.until(lambda: s.client.shown_documents, 60, "window/showDocument")
        (shown,) = s.client.shown_documents
        assert shown.uri == (tmp_path / "server.log").as_uri()
        # Not switched to tiny: the user only asked for the log.
        assert s.statuses[-1]["model"] == "microsoft/phi-1"
        assert s.statuses[-1]["state"] == "error"


async def test_a_client_without_show_document_gets_only_the_tiny_action(tmp_path: Path) -> None:
    env = _hub_env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1")
    caps = types.ClientCapabilities(text_document=CAPS.text_document, workspace=CAPS.workspace)
    async with server(tmp_path, {"model": "microsoft/phi-1"}, env=env, capabilities=caps) as s:
        await s.until(lambda: s.requests, 60, "the failed load's message")
        assert [a.title for a in s.requests[0].actions or []] == [USE_TINY]
