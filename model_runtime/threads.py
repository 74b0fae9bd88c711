"""How many CPU threads the local engine's forwards use.

Decode is memory-bound: a tiny model decodes fastest on one thread, a big one on the
physical cores (a second thread per core only competes for the same bandwidth).
``PHI_LSP_THREADS=N`` overrides (0: torch's own setting).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

# Below this many parameters a CPU forward is a string of tiny kernels: more threads only
# add synchronisation, and on a busy machine (measured: 2 shared cores) a second thread
# made the ``tiny`` model's decode ~10x slower (70 vs 6 ms/token).
SMALL_MODEL_PARAMS = 30_000_000


def is_small(model: Any) -> bool:
    return sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings count once): decode is
    memory-bound, and a second thread per core only competes for the same bandwidth."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for c in cpus:
        topo = f"/sys/devices/system/cpu/cpu{c}/topology/"
        try:
            with open(topo + "physical_package_id") as a, open(topo + "core_id") as b:
                cores.add((a.read().strip(), b.read().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def pick_threads(model: Any, threads: int | None) -> int:
    """Intra-op threads for this engine's forwards; 0 = leave torch's setting alone.
    ``PHI_LSP_THREADS`` overrides. CPU: one for small models, else physical cores."""
    env = os.environ.get("PHI_LSP_THREADS", "").strip()
    if env.isdigit():
        return int(env)
    if threads is not None:
        return max(0, threads)
    if getattr(getattr(model, "device", None), "type", "cpu") != "cpu":
        return 0
    return 1 if is_small(model) else physical_cores()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if n <= 0 or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
