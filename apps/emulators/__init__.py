"""Faithful fakes of the providers' wire protocols (GigaChat, YandexGPT, MTS, T-Bank).

Each emulator is a plain ``aiohttp.web.Application`` built by ``make_app(**options)`` in its
module; ``server.start_emulators`` / ``server.EmulatorThread`` serve them on loopback. Nothing here
needs Django except ``management/commands/run_emulators.py``.

Deterministic behaviour is described in ``behaviour.py``; fault injection in ``faults.py``;
the control API (``/_emulator/...``) in ``state.py``.
"""
