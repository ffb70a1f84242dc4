"""Whether a process still runs (no Django here: the lean usage writer imports it)."""

import os


def alive(pid: int) -> bool:
    """True while `pid` runs (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
