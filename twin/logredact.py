"""Credentials never reach the logs: a logging filter that redacts them in every record.

The API ignores ``?token=`` (a token goes in the Authorization header), but uvicorn's access
log wrote the query string verbatim, so a token pasted into a URL ended up in the log. The
filter rewrites a record's message and arguments before any handler formats them:

- the value of a query parameter whose name looks like a credential (``token``,
  ``access_token``, ``api_key``, ``password``, ``authorization``, ``signature``, ...);
- anything shaped like a twin token (``twin_`` and 43 URL-safe characters) wherever it is;
- the credentials of a URL (``postgresql://user:secret@host``).

``twin serve`` installs it on uvicorn's handlers (:func:`uvicorn_log_config`).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote

REDACTED = "[redacted]"
#: Query parameter names (lower case, percent-decoded) whose values are secrets.
SECRET_NAME = re.compile(
    r"(^|[_.-])(token|access[_-]?token|id[_-]?token|refresh[_-]?token|auth|authorization|"
    r"api[_-]?key|apikey|key|secret|client[_-]?secret|password|passwd|pwd|session|sessionid|"
    r"sig|signature|credential|credentials|jwt|bearer)$"
)
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;\s#\"']+)=(?P<value>[^&;\s#\"']*)")
_TWIN_TOKEN = re.compile(r"twin_[A-Za-z0-9_-]{20,}")
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def secret_name(name: str) -> bool:
    """Whether a query parameter of this name carries a credential."""
    return bool(SECRET_NAME.search(unquote(name).strip().lower()))


def redact(text: str) -> str:
    """``text`` with credentials replaced by :data:`REDACTED`."""
    if not text:
        return text

    def param(m: re.Match[str]) -> str:
        if secret_name(m["name"]) and m["value"]:
            return f"{m['lead']}{m['name']}={REDACTED}"
        return m[0]

    text = _PARAM.sub(param, text) if "=" in text else text
    text = _TWIN_TOKEN.sub(REDACTED, text) if "twin_" in text else text
    text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}", text) if "://" in text else text
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


def _redact_arg(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("latin-1")).encode("latin-1")
    return value


class RedactCredentials(logging.Filter):
    """Redacts credentials in each record's message and arguments (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with :class:`RedactCredentials` on every handler, and
    the root logger (the twin's own warnings) sent through the same filtered handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_credentials"] = {"()": RedactCredentials}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_credentials")
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
