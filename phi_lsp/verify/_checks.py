"""What example extraction produces and shares: :class:`Check`, :class:`Skipped`, the
caps on its work, and :class:`Ctx`, the state every reading rule appends to and the
budget it spends (:mod:`phi_lsp.verify.examples` has the overview)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

MAX_DOCSTRING_CHARS = 100_000  # longer docstrings are not read for examples
MAX_EXAMPLE_CHARS = 4_000  # an informal example's logical line
MAX_EXAMPLES = 100  # checks per function; the rest are reported as skipped
MAX_CANDIDATES = 400  # lines per docstring examined as possible examples (parsed)
MAX_LINES_JOINED = 12  # lines one example (a call, an Input:) may be written over


@dataclass(frozen=True)
class Check:
    """One example to run. ``line`` is the 0-based line inside the docstring."""

    kind: str  # "doctest" | "call"
    source: str  # doctest source, or the call expression
    expected: str  # doctest "want" text, or the expected literal's source
    line: int
    style: str = ""  # ">>>", "==", "->", "returns", "input/output", ...
    exc_msg: str | None = None  # doctest: the expected exception line
    options: dict[str, bool] = field(default_factory=dict)  # doctest directives by name

    def as_dict(self) -> dict:
        return asdict(self)

    def wire(self) -> dict[str, str]:
        """What the sandbox gets: the code to run, never the expected text (the verdict
        is the host's, :func:`phi_lsp.verify.compare.judge`)."""
        return {"kind": self.kind, "source": self.source}


@dataclass(frozen=True)
class Skipped:
    line: int
    text: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExtractResult:
    checks: list[Check]
    skipped: list[Skipped]


class OutOfTime(Exception):
    pass


class Exhausted(Exception):
    """More lines look like examples than :data:`MAX_CANDIDATES`."""

    def __init__(self, line: int) -> None:
        self.line = line


@dataclass
class Ctx:
    """What every rule needs: the function, its signature, the time budget."""

    name: str
    params: Sequence[str] | None
    required: int | None
    deadline: float | None
    equals_is_definition: bool = False
    budget: int = MAX_CANDIDATES
    checks: list[Check] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def tick(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfTime

    def spend(self, line: int) -> None:
        """One line to parse (the costly part): a docstring gets MAX_CANDIDATES."""
        self.budget -= 1
        if self.budget < 0:
            raise Exhausted(line)
