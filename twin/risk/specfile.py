"""What the declarative files (risk layers, alert rules) share: reading TOML and errors that name
the file and the field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class SpecFileError(ValueError):
    """A declarative file is malformed; the message names the file and the field."""

    def __init__(self, path: Path | str, field_name: str, message: str) -> None:
        super().__init__(f"{path}: {field_name}: {message}")
        self.path = str(path)
        self.field = field_name


def read_toml(path: Path, error: type[SpecFileError]) -> dict[str, Any]:
    """The file's TOML document; ``error`` (field 'toml' or 'file') when it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise error(path, "toml", str(exc)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, "file", str(exc)) from exc


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def require(
    doc: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    path: Path,
    error: type[SpecFileError],
) -> Any:
    """``doc[key]``, which must exist and be of ``kind`` (a bool is not a number here)."""
    if key not in doc:
        raise error(path, key, "missing")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise error(path, key, f"expected {_kind_name(kind)}, got {value!r}")
    return value
