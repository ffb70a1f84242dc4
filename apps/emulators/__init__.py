"""Faithful fakes of the providers' wire protocols, with fault injection and a ledger.

* ``gigachat.py`` (+ ``gigachat_auth.py``), ``yandexgpt.py`` (+ ``yandex_iam.py``),
  ``openai_like.py`` (+ ``openai_chat.py``) for MTS and T-Bank: each ``make_app(**options)``
  returns a plain ``aiohttp.web.Application``.
* ``behaviour.py``: the deterministic answers, token counts and tool arguments.
* ``faults.py``, ``state.py``, ``responses.py``: fault injection, the ledger and the control API
  (``/_emulator/...``), shared by all four.
* ``server.py``: ``start_emulators`` / ``EmulatorThread``; ``control.py``: a client for the control API.

Nothing here needs Django except ``management/commands/run_emulators.py``.
"""
