"""Logging filters of the server process (no Django here: uvicorn's log config uses them too).

No secret reaches a log line, whoever logs it:
- query strings: a client may put a key or a token there (the WebSocket endpoint refuses such
  keys, but only after uvicorn has logged the handshake's path and query, refused ones included).
  A "?" and everything after it up to the next blank goes: a request target never holds a blank
  (its line is split on them), so the cut cannot stop short, whatever the path or the quotes in
  the query; a "?" that ends a sentence stays;
- API keys and bearer tokens anywhere in a line: at DEBUG, uvicorn's WebSocket protocol logs each
  handshake header (`< authorization: Bearer xr-...`, `< sec-websocket-protocol: xrouter.v1,
  xrouter.key.xr-...`); a key keeps its prefix (which identifies it) and loses its secret; OAuth
  access and refresh tokens (`xro-`, `xrr-`) keep only their prefix;
- a Telegram bot token in a Bot API URL's path (`/bot<id>:<secret>/sendMessage`, apps/alerts): an
  httpx breadcrumb or an error naming the URL would carry it.
The message, its arguments and the exception and stack texts are cleaned before any formatter
(plain or JSON) reads them.
"""

import logging
import re

from apps.common.request_id import REQUEST_ID  # a plain module: no Django is loaded by this import

QUERY = re.compile(r"\?[^\s]+")  # a "?" that ends a sentence stays
SECRETS = re.compile(r"\b(xr-[A-Za-z0-9]{4,16})-[A-Za-z0-9_\-]{8,}|(bearer\s+)[^\s,\"']+|(xrouter\.key\.)[^\s,\"']+"
                     r"|\b(xr[or]-)[A-Za-z0-9_\-]{16,}|(/bot)\d+:[A-Za-z0-9_\-]+", re.IGNORECASE)
_exceptions = logging.Formatter()


def _hide(match: re.Match) -> str:
    if match.group(1):
        return match.group(1) + "-[redacted]"
    return (match.group(2) or match.group(3) or match.group(4) or match.group(5)) + "[redacted]"


def strip_query(text: str) -> str:
    """The text without query strings, API keys or bearer tokens."""
    if "?" in text:
        text = QUERY.sub("", text)
    return SECRETS.sub(_hide, text)


def _clean(value):
    if isinstance(value, str):
        return strip_query(value)
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value)  # an exception, a URL object, bytes...: logged as its text, so cleaned as text
    cleaned = strip_query(text)
    return value if cleaned == text else cleaned


class StripQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = strip_query(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_clean(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _clean(v) for k, v in args.items()}
        if record.exc_info and record.exc_info[0] is not None:
            # The formatted traceback, cleaned, replaces the exception: every formatter (the JSON
            # one included) prints exc_text when exc_info is gone.
            record.exc_text = strip_query(_exceptions.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = strip_query(record.exc_text)
        if record.stack_info:
            record.stack_info = strip_query(record.stack_info)
        return True


class RequestIdFilter(logging.Filter):
    """`request_id` on every record written while a request is served (apps/common/request_id.py), unless
    the call named one itself; the JSON formatter prints it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id:
                record.request_id = request_id
        return True


def uvicorn_log_config() -> dict:
    """uvicorn's own logging configuration with the filter on its handlers, so its error and access
    lines (the WebSocket handshakes among them) pass through it."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "filters": {"strip_query": {"()": "xrouter_project.log_filters.StripQueryStrings"},
                                            "request_id": {"()": "xrouter_project.log_filters.RequestIdFilter"}}}
    config["handlers"] = {name: {**handler, "filters": ["strip_query", "request_id"]}
                          for name, handler in LOGGING_CONFIG["handlers"].items()}
    return config
