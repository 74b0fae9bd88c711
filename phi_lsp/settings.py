"""Typed settings: the one place for defaults.

Filled from LSP ``initializationOptions`` / ``workspace/didChangeConfiguration``
(section ``phiLsp``, camelCase keys), from CLI flags, or from Python keywords
(snake_case). A bad or unknown value never raises: it is reported as a warning
naming the key and the default is kept.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from model_runtime.types import DEVICES, DTYPES

VERIFY_MODES = ("off", "prefer", "require")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, kw_only=True)
class Settings:
    model: str = "microsoft/phi-1"
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = 128
    temperature: float = 0.8  # for sampled candidates after the first (greedy) one
    top_p: float = 0.95
    candidates: int = 1
    verify: str = "off"
    verify_timeout_ms: int = 3000
    debounce_ms: int = 0
    completion_fallback: bool = False
    log_level: str = "info"
    remote_model: str = ""
    api_key_env: str = ""
    ca_bundle: str = ""  # openai:URL behind a TLS proxy: its CA certificate file
    enable: bool = True
    # The project's interpreter for verification ("": detect, see verify/project.py).
    python_path: str = ""
    # Run examples without the sandbox's isolation (trusted code only).
    verify_unisolated: bool = False

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_wire(self) -> dict[str, Any]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}


_CHOICES: dict[str, tuple[str, ...]] = {
    "device": DEVICES,
    "dtype": DTYPES,
    "verify": VERIFY_MODES,
    "log_level": LOG_LEVELS,
}
_RANGES: dict[str, tuple[float, float]] = {
    "max_new_tokens": (1, 1024),
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "candidates": (1, 16),
    "verify_timeout_ms": (50, 60_000),
    "debounce_ms": (0, 5_000),
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def parse(
    raw: Mapping[str, Any] | None, base: Settings | None = None
) -> tuple[Settings, list[str]]:
    """Merge ``raw`` (camelCase or snake_case keys) over ``base``.

    Returns the settings and a list of human-readable warnings, one per bad key.
    A value of None means "not set" and keeps the base value.
    """
    base = base or Settings()
    if raw is None:
        return base, []
    if not isinstance(raw, Mapping):
        return base, [
            f"phiLsp settings must be an object, got {type(raw).__name__}; using defaults"
        ]
    # Accept both {"phiLsp": {...}} and the section itself.
    if "phiLsp" in raw and isinstance(raw["phiLsp"], Mapping):
        raw = raw["phiLsp"]
    known = {f.name: f for f in fields(Settings)}
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in raw.items():
        name = _snake(str(key))
        if name not in known:
            warnings.append(f"phiLsp.{key}: unknown setting, ignored")
            continue
        if value is None:
            continue
        default = getattr(base, name)
        ok, coerced = _coerce(name, value, type(default))
        if ok:
            changes[name] = coerced
        else:
            warnings.append(
                f"phiLsp.{_camel(name)}: invalid value {value!r} ({coerced}); using {default!r}"
            )
    return base.replace(**changes), warnings


def _coerce(name: str, value: Any, kind: type) -> tuple[bool, Any]:
    if kind is bool:
        if isinstance(value, bool):
            return True, value
        return False, "expected true or false"
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            return False, "expected a whole number"
        value = int(value)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, "expected a number"
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            return False, "expected a string"
        value = value.strip()
        if name in _CHOICES:
            value = value.lower()
            if value not in _CHOICES[name]:
                return False, "expected one of " + ", ".join(_CHOICES[name])
        elif name == "model" and not value:
            return False, "expected a model spec"
    if name in _RANGES:
        lo, hi = _RANGES[name]
        if not lo <= value <= hi:
            return False, f"expected {lo:g}..{hi:g}"
    return True, value
