"""The ``tiny`` model: a small ``PhiForCausalLM`` trained here, for offline demos and tests.

Same architecture as Phi-1 (partial rotary 0.5, gelu_new), a byte-level BPE tokenizer
trained with ``tokenizers`` on the shipped corpus (``data/tiny_corpus.py``), saved with
``save_pretrained`` so that it loads through the same ``from_pretrained`` path as a
user's model. Built deterministically on first use into the user cache:

    <cache>/models/tiny-tokenizer-v1/   tokenizer only (quick; ``random:phi-1`` uses it)
    <cache>/models/tiny-v1/             model + tokenizer + phi_lsp_tiny.json

``<cache>`` is ``$PHI_LSP_CACHE_DIR`` or platformdirs' user cache dir for "phi-lsp".
Builds run under a file lock (concurrent test processes build once) into a temp dir
beside the target, renamed into place when complete. A change of the corpus or the
recipe changes the hash in the metadata and triggers a rebuild.

torch and transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from model_runtime.progress import ProgressFn, Reporter, library_progress

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
META_FILE = "phi_lsp_tiny.json"
TOKENIZER_NAME = "tiny-tokenizer-v1"
MODEL_NAME = "tiny-v1"
BUILD_MESSAGE = "building the tiny demo model"

# Everything that shapes the result; part of the hash, so changing it rebuilds.
TOKENIZER_RECIPE: dict[str, Any] = {"vocab_size": 1024, "min_frequency": 2}
MODEL_RECIPE: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "partial_rotary_factor": 0.5,
    "max_position_embeddings": 2048,
    "seed": 0,
    "threads": 1,
    "steps": 300,
    "batch_size": 16,
    "block_size": 128,
    "lr": 3e-3,
    "min_lr": 3e-4,
    "warmup": 30,
    "weight_decay": 0.01,
}


# --- where things live --------------------------------------------------------------


def cache_root() -> Path:
    env = os.environ.get("PHI_LSP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("phi-lsp"))


def tiny_model_dir() -> Path:
    return cache_root() / "models" / MODEL_NAME


def tiny_tokenizer_dir() -> Path:
    return cache_root() / "models" / TOKENIZER_NAME


# --- the corpus ---------------------------------------------------------------------


def corpus_text(name: str = "tiny_corpus.py") -> str:
    return (resources.files("model_runtime") / "data" / name).read_text("utf-8")


def heldout_functions() -> dict[str, str]:
    """Functions in the corpus's style that the model is NOT trained on."""
    return corpus_functions(corpus_text("tiny_heldout.py"))


def corpus_samples(text: str | None = None) -> list[tuple[str, str]]:
    """(name, source) of every top-level function of the corpus, in file order, a name
    defined twice (the deliberately ambiguous pairs) included twice: the training set."""
    text = corpus_text() if text is None else text
    out: list[tuple[str, str]] = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            src = ast.get_source_segment(text, node)
            assert src is not None
            out.append((node.name, src))
    return out


def corpus_functions(text: str | None = None) -> dict[str, str]:
    """name → source of every top-level function of the corpus, in file order; a name
    defined twice (an ambiguous pair, see ``ambiguous_pairs``) maps to its first body."""
    out: dict[str, str] = {}
    for name, src in corpus_samples(text):
        out.setdefault(name, src)
    return out


def ambiguous_pairs(text: str | None = None) -> dict[str, list[str]]:
    """name → its sources, for the names the corpus defines more than once: the same
    signature and docstring with different bodies (the model learns to split there)."""
    seen: dict[str, list[str]] = {}
    for name, src in corpus_samples(text):
        seen.setdefault(name, []).append(src)
    return {name: srcs for name, srcs in seen.items() if len(srcs) > 1}


def split_at_docstring(source: str) -> tuple[str, str]:
    """(prompt, body) of a function: the prompt ends at the docstring's closing quotes
    (no newline: see docs/architecture.md "Where the prompt ends"), the body is the rest."""
    end = source.index('"""', source.index('"""') + 3) + 3
    return source[:end], source[end:]


def _hash(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


def tokenizer_hash() -> str:
    return _hash(corpus_text(), TOKENIZER_RECIPE)


def model_hash() -> str:
    return _hash(corpus_text(), TOKENIZER_RECIPE, MODEL_RECIPE)


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / META_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def is_built(path: Path, want_hash: str) -> bool:
    meta = read_meta(path)
    return meta is not None and meta.get("hash") == want_hash


# --- building, once, atomically -----------------------------------------------------


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Exclusive lock beside ``target`` so concurrent processes build it once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the atomic rename still protects readers
        yield
        return
    with open(target.parent / f"{target.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_atomically(target: Path, want_hash: str, build: Callable[[Path], None]) -> Path:
    with _locked(target):
        if is_built(target, want_hash):  # another process finished it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            build(tmp)
            tmp.chmod(0o755)  # mkdtemp made it private; the cache is readable like any other
            old = None
            if target.exists():
                old = target.parent / f".{target.name}-old-{os.getpid()}"
                target.rename(old)
            tmp.rename(target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _ensure(target: Path, want_hash: str, build: Callable[[Path], None], force: bool) -> Path:
    """``target`` as built for ``want_hash``: at once when it is (unless ``force``),
    else built now, once, whoever else asks at the same time."""
    if not force and is_built(target, want_hash):
        return target
    if force:
        _invalidate(target)
    return _build_atomically(target, want_hash, build)


def ensure_tokenizer(force: bool = False) -> Path:
    """The tiny tokenizer's directory, trained first if needed (a second or two)."""
    want = tokenizer_hash()
    return _ensure(tiny_tokenizer_dir(), want, lambda d: _write_tokenizer(d, want), force)


def ensure_tiny(force: bool = False, progress: ProgressFn | None = None) -> Path:
    """The tiny model's directory, trained first if needed (a few minutes); ``progress``
    gets ``Progress("build", ...)`` at each whole percent of the training steps."""
    want = model_hash()
    return _ensure(tiny_model_dir(), want, lambda d: build_tiny(d, want, progress), force)


def _invalidate(target: Path) -> None:
    # Under the lock, a missing/stale meta makes _build_atomically rebuild.
    with _locked(target), contextlib.suppress(OSError):
        (target / META_FILE).unlink()


# --- the tokenizer ------------------------------------------------------------------


def train_tokenizer() -> Any:
    """A byte-level BPE (GPT-2 style: a newline merges with the indentation after it)
    trained on the corpus, wrapped as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_RECIPE["vocab_size"],
        min_frequency=TOKENIZER_RECIPE["min_frequency"],
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([src for _, src in corpus_samples()], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        model_max_length=MODEL_RECIPE["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )


def _write_tokenizer(out: Path, want_hash: str) -> None:
    t0 = time.perf_counter()
    train_tokenizer().save_pretrained(out)
    meta = {"hash": want_hash, "recipe": TOKENIZER_RECIPE, "seconds": time.perf_counter() - t0}
    (out / META_FILE).write_text(json.dumps(meta, indent=2), "utf-8")


def load_tiny_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_tokenizer())


# --- the model ----------------------------------------------------------------------


def tiny_config(vocab_size: int, eos_id: int) -> Any:
    from transformers import PhiConfig

    r = MODEL_RECIPE
    return PhiConfig(
        vocab_size=vocab_size,
        hidden_size=r["hidden_size"],
        intermediate_size=r["intermediate_size"],
        num_hidden_layers=r["num_hidden_layers"],
        num_attention_heads=r["num_attention_heads"],
        max_position_embeddings=r["max_position_embeddings"],
        hidden_act="gelu_new",
        layer_norm_eps=1e-5,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": r["partial_rotary_factor"],
        },
        tie_word_embeddings=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def _token_stream(tokenizer: Any, rng: random.Random, repeats: int) -> tuple[list[int], list[int]]:
    """Token ids of ``repeats`` shuffled passes over the corpus, laid out like files:
    1–3 functions separated by two blank lines, EOS between files. Also returns the
    offsets where a function starts (windows are often aligned there, because prompts
    start at a ``def`` too)."""
    eos = tokenizer.eos_token_id
    sep = tokenizer.encode("\n\n\n")
    funcs = [tokenizer.encode(src) for _, src in corpus_samples()]
    ids: list[int] = [eos]
    starts: list[int] = []
    for _ in range(repeats):
        order = list(range(len(funcs)))
        rng.shuffle(order)
        i = 0
        while i < len(order):
            n = rng.randint(1, 3)
            for k, j in enumerate(order[i : i + n]):
                if k:
                    ids.extend(sep)
                starts.append(len(ids))
                ids.extend(funcs[j])
            ids.extend([*tokenizer.encode("\n"), eos])
            i += n
    return ids, starts


def build_tiny(out: Path, want_hash: str, progress: ProgressFn | None = None) -> None:
    """Train the tiny model into ``out`` (model, tokenizer, metadata). Deterministic:
    seeded, fixed thread count, deterministic algorithms. Steps go to ``progress`` (each
    whole percent) and to the log (every 50 steps)."""
    import torch
    from transformers import AutoTokenizer, PhiForCausalLM

    r = MODEL_RECIPE
    reporter = Reporter(progress, "build", BUILD_MESSAGE, r["steps"], unit="steps")
    reporter.update(0)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(ensure_tokenizer())
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    # One thread: the same reduction order (so the same weights) on every machine, and
    # faster than two on a shared, busy 2-core box (measured).
    torch.set_num_threads(r["threads"])
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(r["seed"])
        rng = random.Random(r["seed"])
        config = tiny_config(len(tokenizer), tokenizer.eos_token_id)
        model = PhiForCausalLM(config)
        model.train()
        ids, starts = _token_stream(tokenizer, rng, repeats=8)
        data = torch.tensor(ids, dtype=torch.long)
        block, batch = r["block_size"], r["batch_size"]
        starts = [s for s in starts if s + block + 1 <= len(ids)]
        opt = torch.optim.AdamW(
            model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"], betas=(0.9, 0.95)
        )
        losses: list[float] = []
        for step in range(r["steps"]):
            opt.param_groups[0]["lr"] = _lr(step)
            # Half the windows start at a function's `def`, half anywhere.
            offs = [
                rng.choice(starts) if k % 2 == 0 else rng.randrange(len(ids) - block - 1)
                for k in range(batch)
            ]
            x = torch.stack([data[o : o + block] for o in offs])  # [B, T]
            loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            # The last step's 100 % waits for the files: a consumer takes 100 as done.
            reporter.update(min(step + 1, r["steps"] - 1))
            if step % 50 == 0 or step == r["steps"] - 1:
                log.info(
                    "tiny: step %d/%d loss %.3f (%.0f s)",
                    step + 1,
                    r["steps"],
                    losses[-1],
                    time.perf_counter() - t0,
                )
        model.eval()
        with library_progress(None):  # no "Writing model shards" bar on stderr
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)
    final = sum(losses[-20:]) / min(20, len(losses))
    meta = {
        "hash": want_hash,
        "corpus_sha256": hashlib.sha256(corpus_text().encode()).hexdigest(),
        "corpus_functions": len(corpus_samples()),
        "recipe": r,
        "tokenizer": TOKENIZER_RECIPE,
        "params": sum(p.numel() for p in model.parameters()),
        "steps": r["steps"],
        "final_loss": round(final, 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2), "utf-8")
    log.info("tiny: built in %s s, final loss %.3f", meta["seconds"], final)
    reporter.update(r["steps"])


def _lr(step: int) -> float:
    r = MODEL_RECIPE
    if step < r["warmup"]:
        return r["lr"] * (step + 1) / r["warmup"]
    frac = (step - r["warmup"]) / max(1, r["steps"] - r["warmup"])
    return r["min_lr"] + 0.5 * (r["lr"] - r["min_lr"]) * (1 + math.cos(math.pi * frac))


def main() -> int:
    """``python -m model_runtime.tiny [--force]``: build and print the directory."""
    from model_runtime.progress import TerminalProgress

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(ensure_tiny(force="--force" in sys.argv[1:], progress=TerminalProgress()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
