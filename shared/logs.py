"""Structured JSON logs, one object per line, carrying the request id when there is one."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# PostgreSQL writes the values of the row that broke a constraint into its error's DETAIL (and,
# for COPY, CONTEXT) line: "Key (tipo_documento_id, numero_documento)=(1, 52318804) already
# exists.", "Failing row contains (...)". psycopg and SQLAlchemy carry that text into the
# exception, and libraries log it (sqladmin at ERROR when an admin edit fails).
_ROW_VALUE_LINE = re.compile(r"^(DETAIL|CONTEXT):.*$", re.MULTILINE)
_KEY_VALUES = re.compile(r"\bKey \(([^()]*)\)=\(.*?\)(?= |$|\.)", re.MULTILINE)
ROW_VALUES_HIDDEN = "(row values hidden)"


def hide_row_values(text: str) -> str:
    """The text without the row values a PostgreSQL error carries; the rest (the constraint's
    name, the SQL) stays, since that is what tells what went wrong."""
    if "DETAIL:" not in text and "CONTEXT:" not in text and "Key (" not in text:
        return text  # the usual case: one scan of the text, no regex
    text = _ROW_VALUE_LINE.sub(lambda match: f"{match.group(1)}:  {ROW_VALUES_HIDDEN}", text)
    return _KEY_VALUES.sub(lambda match: f"Key ({match.group(1)})={ROW_VALUES_HIDDEN}", text)


class HideRowValues(logging.Filter):
    """Strips PostgreSQL's row values from a record's message and traceback, whoever logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = hide_row_values(message)
        if hidden != message:
            record.msg, record.args = hidden, None
        if record.exc_info and not record.exc_text:
            # The formatter prints exc_text when it is set: the traceback ends with the message.
            record.exc_text = hide_row_values(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(HideRowValues())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
