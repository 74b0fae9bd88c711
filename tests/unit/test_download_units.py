"""download.py's choices: which files from_pretrained needs, and what a failure is called."""

from __future__ import annotations

import errno

import pytest

from model_runtime.download import _classify, wanted_files

PHI1_FILES = [
    ".gitattributes",
    "CODE_OF_CONDUCT.md",
    "LICENSE",
    "README.md",
    "SECURITY.md",
    "added_tokens.json",
    "config.json",
    "generation_config.json",
    "merges.txt",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
]


def test_phi1_needs_its_weights_config_and_tokenizer_files_only() -> None:
    assert wanted_files(PHI1_FILES) == [
        "added_tokens.json",
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]


def test_one_weight_format_safetensors_first_and_no_subfolders() -> None:
    both = [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "onnx/model.onnx",
        "onnx/config.json",
    ]
    assert wanted_files(both) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    bins = ["config.json", "pytorch_model.bin", "tokenizer.json", "flax_model.msgpack"]
    assert wanted_files(bins) == ["config.json", "pytorch_model.bin", "tokenizer.json"]


@pytest.mark.parametrize(
    ("error", "reason", "words"),
    [
        (ConnectionResetError("reset by peer"), "unreachable", "connection to the hub was lost"),
        (TimeoutError("timed out"), "unreachable", "connection to the hub was lost"),
        (OSError(errno.ENOSPC, "No space left on device"), "failed", "disk is full"),
        (RuntimeError("something odd"), "failed", "the log has the details"),
    ],
)
def test_failures_are_named_in_one_short_sentence(
    error: Exception, reason: str, words: str
) -> None:
    e = _classify("microsoft/phi-1", error)
    assert e.reason == reason and words in e.short
    assert len(e.short) < 200 and "--" not in e.short
    assert str(error) in e.details  # the library's words go to the log
