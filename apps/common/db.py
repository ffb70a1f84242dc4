"""Database reads from the event loop, on the rare cache miss."""

from asgiref.sync import sync_to_async
from django.db import connections


def _closing(fn):
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            # The pool thread's connection would otherwise outlive the call (one per thread
            # and context); a miss is rare, so reconnecting next time is cheaper than a leak.
            connections.close_all()

    return run


def run_sync(fn):
    """`await run_sync(fn)(*args)`: fn in a pool thread, its database connection closed after."""
    return sync_to_async(_closing(fn), thread_sensitive=False)
