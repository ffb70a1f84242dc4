"""300 chat streams at once over real WebSockets against the real gateway process: every socket opens,
then all ask at once; no error, every stream complete (its whole answer, then `done` with usage), and
every one billed to its key."""

import asyncio
import contextlib
import time

from tests.gateway.test_websocket import _auth, _request, _text, _until_end, _ws_url

STREAMS = 300


async def _streams(base_url: str, key: str) -> list:
    from websockets.asyncio.client import connect

    async with contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.wait_for(asyncio.gather(*(
            stack.enter_async_context(connect(_ws_url(base_url), open_timeout=60, additional_headers=_auth(key)))
            for _ in range(STREAMS))), 120)
        await asyncio.gather(*(ws.send(_request(text="many at once [long]")) for ws in sockets))
        # A hang guard only: 300 streams of 24 chunks take seconds.
        return await asyncio.wait_for(asyncio.gather(*(_until_end(ws, timeout=120) for ws in sockets),
                                                     return_exceptions=True), 300)


def test_300_concurrent_streams_complete_without_an_error(gateway, django_db_blocker):
    from apps.accounts.models import User
    from apps.emulators.behaviour import LONG_ANSWER
    from apps.keys.services import key_create
    from apps.usage.models import UsageRecord

    with django_db_blocker.unblock():
        key, plaintext = key_create(user=User.objects.get(username="alice"), name="ws-300")

    results = asyncio.run(_streams(gateway.base_url, plaintext))

    failures = [r for r in results if isinstance(r, BaseException) or r[-1]["type"] != "done"]
    assert failures == []
    assert all(_text(frames) == LONG_ANSWER for frames in results)
    assert all(frames[-1]["usage"]["completion_tokens"] > 0 and "cancelled" not in frames[-1] for frames in results)
    ids = {frames[-1]["id"].removeprefix("chatcmpl-") for frames in results}
    assert len(ids) == STREAMS
    with django_db_blocker.unblock():
        stored, deadline = 0, time.monotonic() + 30
        while stored < STREAMS and time.monotonic() < deadline:  # the usage writer stores within seconds
            time.sleep(0.2)
            stored = UsageRecord.objects.filter(request_id__in=ids, key_prefix=key.prefix, status="ok").count()
    assert stored == STREAMS
