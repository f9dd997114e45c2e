"""Logging set-up for every kbot process: Rich for a person at a terminal, one JSON object per line
for a log collector (container logs, journald, a file).

A JSON line carries `time`, `level`, `logger`, `message` and the context a record was given with
`extra=` (`answer_id`, `platform`, `mode`, the access log's `http_*` fields ...), plus `exc` with the
traceback when there is one. Nothing in kbot logs question or answer text at INFO; the test suite
checks that for the web, Slack and Discord paths.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra=` and is context.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Third-party loggers that log URLs (with query strings) or chatter at INFO.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "aiohttp.access", "chromadb", "sentence_transformers", "urllib3",
                 "alembic", "bm25s", "LiteLLM", "uvicorn.access", "opentelemetry")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is at the time of each record (test runners and
    daemonisers swap it), never a stream captured once and closed later."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def use_json(fmt: str, stream: TextIO) -> bool:
    """`auto`: JSON unless the stream is a terminal."""
    if fmt not in ("auto", "json", "rich"):
        raise ValueError(f"unknown log format {fmt!r}: use auto, json or rich")
    return fmt == "json" or (fmt == "auto" and not stream.isatty())


def configure_logging(*, verbose: bool = False, fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route every logger (kbot's, uvicorn's, discord.py's, Bolt's) to one handler on `stream`
    (default: stderr). Calling it again replaces the handler it installed before, and only that one."""
    handler: logging.Handler
    if use_json(fmt, stream or sys.stderr):
        handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
        handler.setFormatter(JsonFormatter())
    else:
        from rich.console import Console
        from rich.logging import RichHandler

        console = Console(file=stream) if stream is not None else Console(stderr=True)
        handler = RichHandler(console=console, show_path=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler._kbot = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_kbot", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's own loggers propagate to the root handler instead of printing in their own format.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
