"""Logging filters of the server process (no Django here: uvicorn's log config uses them too).

Query strings never reach a log: a client may put a key or a token there (the WebSocket endpoint
refuses such keys, but only after uvicorn has logged the handshake's path and query, refused
handshakes included). The filter cuts every `?...` that follows a path, in the message and in
its arguments, before anything formats the record.
"""

import logging
import re

# A path ("/" then no blanks) followed by a query: keep the path, drop "?..." up to a blank or quote.
QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")


def strip_query(text: str) -> str:
    return QUERY.sub(r"\1", text) if "?" in text else text


class StripQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = strip_query(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(strip_query(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, dict):
            record.args = {k: strip_query(v) if isinstance(v, str) else v for k, v in args.items()}
        return True


def uvicorn_log_config() -> dict:
    """uvicorn's own logging configuration with the filter on its handlers, so its error and access
    lines (the WebSocket handshakes among them) pass through it."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "filters": {"strip_query": {"()": "xrouter_project.log_filters.StripQueryStrings"}}}
    config["handlers"] = {name: {**handler, "filters": ["strip_query"]} for name, handler in LOGGING_CONFIG["handlers"].items()}
    return config
