"""The WebSocket endpoint `/v1/realtime/chat`: chat streams over one socket, on the relay SSE uses.

Auth, at the handshake: `Authorization: Bearer xr-...`, or (browsers cannot set headers) the
subprotocols `xrouter.v1, xrouter.key.<key>`; the server answers the subprotocol `xrouter.v1`
only, so the key is never echoed. The portal's playground instead offers `xrouter.session.<key
id>` with the portal's session cookie, from the portal's own Origin only (ws_session.py). A key
in the query string is refused (close 4401): URLs end up in logs. The key is checked again on every `request` and whenever a key changes anywhere
(the bus topic "keys"): a revoked or expired key closes its sockets with 4401 within a second.

Client frames (JSON text):
  {"type": "request", ...a /v1/chat/completions body...}  streams the answer (`stream` implied)
  {"type": "cancel"}   ends the answer in flight; what was produced is billed
  {"type": "ping"}     answered with {"type": "pong"}
Server frames:
  `chat.completion.chunk` objects, as in SSE, then
  {"type": "done", "id": "chatcmpl-...", "usage": {...}}          (with "cancelled": true after a cancel)
  or {"type": "error", "id": "chatcmpl-...", "error": {...}}      (the /v1 error object)
One request at a time: a `request` while one streams gets an error frame with the code
`request_in_flight` and the stream goes on. Each answer runs in a task of its own, so the socket
keeps reading (`cancel`, `ping`) while it streams. Frames are capped at XROUTER_MAX_BODY_BYTES
and uvicorn queues at most 4 unread ones (xrouter_project/server.py).

Close codes: 4401 a refused, revoked or expired key (the reason says which and how to send one);
4403 a key used from an address outside its IP allow-list (a request frame after the allow-list
changed gets an error frame with the code `ip_not_allowed`);
1013 the key cannot be checked now (the database is unreachable and the key not cached): retry;
1012 the server is restarting (an answer in flight is finished first, within
XROUTER_SHUTDOWN_GRACE). A frame that is not JSON, or of an unknown type, gets an error frame.
"""

import asyncio
import logging
import time
from hashlib import sha256
from urllib.parse import parse_qsl

import orjson

from apps.common import bus
from apps.common.errors import ApiError
from apps.common.request_id import REQUEST_ID, new_request_id
from apps.keys.selectors import KeyInfo, akey_info_stored
from apps.providers.adapters.base import Usage

from .admission import admit
from .auth import credential_info, require_scope
from .handlers import chat
from .http import ClientGone
from .schemas import parse_chat
from .streaming import WsSink
from .ws_session import SESSION_PROTOCOL, offered_choice, session_key, session_user_id

log = logging.getLogger(__name__)
PROTOCOL = "xrouter.v1"
KEY_PROTOCOL = "xrouter.key."
REFUSED = 4401
FORBIDDEN = 4403
TRY_AGAIN_LATER = 1013
HOW_TO_AUTH = "use 'Authorization: Bearer <key>' or subprotocols 'xrouter.v1, xrouter.key.<key>'"  # a close reason: ≤ 123 bytes
QUERY_KEY_NAMES = {"api_key", "api-key", "apikey", "key", "token", "access_token", "authorization"}

_sockets: dict[tuple[str, str], set["RealtimeChat"]] = {}  # open sockets by their key's (prefix, hash), for the re-check on key events
_loop: asyncio.AbstractEventLoop | None = None  # the loop that serves them


class _Sink(WsSink):
    """The relay's sink for one answer, which knows when the answer is over: once its done (or
    error) frame is being sent, a `cancel` has nothing left to stop, and the next `request` may
    start while the relay still writes the answer to the response cache."""

    ended = False

    async def end(self, *args, **kwargs) -> None:
        self.ended = True
        await super().end(*args, **kwargs)


class _WsRequest:
    """What the relay and accounting read of a request, for one answer on a socket."""

    __slots__ = ("request_id", "started", "headers", "admission", "attempts", "span", "prompt_chars")

    def __init__(self, headers: dict):
        self.admission = None  # apps.limits, as on http.Request
        self.attempts = []  # accounting.Attempt, as on http.Request
        self.prompt_chars = 0  # as on http.Request
        self.span = None  # WebSocket answers are not traced (apps.common.tracing traces HTTP requests)
        self.request_id = new_request_id()
        REQUEST_ID.set(self.request_id)  # the connection's log lines name the request it is serving
        self.started = time.monotonic()
        self.headers = headers  # the handshake's: x-xrouter-tags and cache-control apply to every answer

    def header(self, name: bytes) -> str:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else ""


def credentials(scope) -> tuple[str, str | None]:
    """(key, None), ("", None) for a session-authenticated handshake, or ("", why it is refused)."""
    query = scope.get("query_string", b"").decode("latin-1")
    if query and any(name.lower() in QUERY_KEY_NAMES or value.startswith("xr-")
                     for name, value in parse_qsl(query, keep_blank_values=True)):
        return "", "keys in the query string are refused: " + HOW_TO_AUTH
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip(), None
            return "", "malformed Authorization header: " + HOW_TO_AUTH
    offered = scope.get("subprotocols") or ()
    for protocol in offered:
        if protocol.startswith(KEY_PROTOCOL):
            if PROTOCOL not in offered:
                return "", f"offer the subprotocol {PROTOCOL} with {KEY_PROTOCOL}<key>"
            return protocol[len(KEY_PROTOCOL):], None
    if offered_choice(scope) is not None:  # the portal's playground: its session picks the key
        if PROTOCOL not in offered:
            return "", f"offer the subprotocol {PROTOCOL} with {SESSION_PROTOCOL}<key id>"
        return "", None
    return "", "no API key: " + HOW_TO_AUTH


async def realtime_chat(scope, receive, send) -> None:
    """The ASGI app of the endpoint (ws_urls.py)."""
    await RealtimeChat(scope, receive, send).serve()


class RealtimeChat:
    """One socket: reads frames, runs at most one answer at a time in its own task."""

    def __init__(self, scope, receive, send):
        self.scope, self.receive, self._send = scope, receive, send
        self.headers = {k: v for k, v in scope.get("headers", ())}
        self.credential: tuple[str, str] = ("", "")  # a key: its prefix and SHA-256; else ("", the token) (_check)
        self.session_user: int | None = None  # a session-authenticated socket's person (ws_session.py)
        self.closed = False
        self.draining = False
        self.task: asyncio.Task | None = None
        self.sink: _Sink | None = None
        self.helpers: list[asyncio.Task] = []
        self.expiry: tuple[float, asyncio.Task] | None = None  # the expiry watched, and its watcher
        self.tails: set[asyncio.Task] = set()  # answers already ended whose cache write still runs

    async def serve(self) -> None:
        if (await self.receive())["type"] != "websocket.connect":
            return
        token, refusal = credentials(self.scope)
        key = credential = None
        try:
            if refusal is None and not token:
                key, credential, refusal = await session_key(self.headers, offered_choice(self.scope))
                refusal = refusal or None
                self.session_user = key.user_id if key is not None else None
            elif token:
                key = await credential_info(token)
                if key is not None:  # a key by its prefix and hash; an OAuth token or a JWT by itself
                    credential = (key.prefix, sha256(token.encode()).hexdigest()) if key.kind == "key" else ("", token)
        except Exception as exc:  # the key store is down and the key not cached: the client retries
            log.warning("a WebSocket key could not be checked (%s); the socket is told to retry", type(exc).__name__)
            key, refusal, code = None, "the API key cannot be checked right now; retry shortly", TRY_AGAIN_LATER
        else:
            code = REFUSED
            if refusal is None and key is None:
                refusal = "incorrect, revoked or expired API key"
            elif refusal is None:
                try:
                    admit(key, self.scope)
                except ApiError:
                    refusal, code = "this API key may not be used from this address (its IP allow-list)", FORBIDDEN
        # Accept before refusing: a refusal at the handshake is a bare 403, a close code says why.
        offered = self.scope.get("subprotocols") or ()
        await self._send({"type": "websocket.accept", "subprotocol": PROTOCOL if PROTOCOL in offered else None})
        if refusal is not None:
            await self.close(code, refusal)
            return
        self.credential = credential
        global _loop
        _loop = asyncio.get_running_loop()
        _sockets.setdefault(credential, set()).add(self)
        self._watch_expiry(key)
        draining = self.scope.get("xrouter.draining")  # set by the server on SIGTERM (xrouter_project/ws_protocol.py)
        if draining is not None:
            self.helpers.append(asyncio.ensure_future(self._drain_on(draining)))
        why = None  # the server cancelled this socket past its shutdown grace, unless the client left
        try:
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    self.closed, why = True, "client_disconnected"
                    break
                try:
                    await self.on_frame(message)
                except ClientGone:
                    raise
                except Exception:  # a bug (or the key store failing): this frame fails, the socket lives on
                    log.exception("unhandled error in /v1/realtime/chat")
                    await self.send_error(ApiError(500, "Internal error; retry the frame."))
        except ClientGone:
            why = "client_disconnected"
        finally:
            members = _sockets.get(credential)
            if members is not None:
                members.discard(self)
                if not members:
                    del _sockets[credential]
            for helper in (*self.helpers, *self.tails):
                helper.cancel()
            if self.expiry is not None:
                self.expiry[1].cancel()
            await self.stop_answer(why)

    async def on_frame(self, message) -> None:
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self.send_error(ApiError(400, "Frames are JSON objects with a 'type'.", code="invalid_json"))
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "request":
            await self.start_answer(frame)
        elif kind == "cancel":
            await self.stop_answer("client_cancelled")
        elif kind == "ping":
            await self.send_text('{"type":"pong"}')
        else:
            await self.send_error(ApiError(400, "Unknown frame type; use request, cancel or ping.", param="type",
                                           code="unknown_frame_type"))

    async def start_answer(self, frame: dict) -> None:
        if self.task is not None and not self.task.done() and self.sink.ended:
            # The client has its done frame; only the cache write is left, and it may outlast
            # this request (a slow Redis): it finishes on the side, or is cancelled at close.
            self.tails.add(self.task)
            self.task.add_done_callback(self.tails.discard)
            self.task = None
        if self.task is not None and not self.task.done():
            await self.send_error(ApiError(400, "A request is already streaming on this socket; cancel it or wait "
                                                "for its done frame.", code="request_in_flight"))
            return
        if self.draining:
            await self.send_error(ApiError(503, "The server is restarting; reconnect.", code="server_restarting"))
            return
        try:
            if self.session_user is not None and await session_user_id(self.headers) != self.session_user:
                await self.close(REFUSED, "signed out of the portal: sign in, then reconnect")
                return
        except Exception as exc:  # the session store failing: this request fails, the socket lives on
            log.warning("a WebSocket session could not be checked (%s)", type(exc).__name__)
            await self.send_error(ApiError(503, "The portal session cannot be checked right now; retry shortly.",
                                           code="service_unavailable"))
            return
        try:
            key = await _check(self.credential)  # cached: a revoked or expired key stops here
            if key is not None:
                admit(key, self.scope)  # the allow-list may have changed since the handshake
                require_scope(key, "chat")
        except ApiError as exc:  # a missing scope, or the key store down for an uncached key
            await self.send_error(exc)
            return
        if key is None:
            await self.close(REFUSED, "the API key was revoked or has expired")
            return
        del frame["type"]
        req = _WsRequest(self.headers)
        self.sink = sink = _Sink(req, self.send_text)
        self.task = asyncio.ensure_future(self._answer(req, key, frame, sink))

    async def _answer(self, req, key, frame: dict, sink: _Sink) -> None:
        try:
            body = parse_chat(orjson.dumps(frame))
            body["stream"] = True
            await chat(req, None, key, body, sink)
        except ApiError as exc:
            await self.send_error(exc, sink.id)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            if sink.stopped is None:
                raise
            asyncio.current_task().uncancel()
            if sink.stopped == "client_cancelled" and not sink.ended:  # before the first chunk: nothing was produced
                frame = {"type": "done", "id": sink.id, "usage": Usage().to_openai(), "cancelled": True}
                await self.send_text(orjson.dumps(frame).decode())
        except Exception:
            log.exception("unhandled error in /v1/realtime/chat", extra={"request_id": req.request_id})
            await self.send_error(ApiError(500, "Internal error; the request id identifies it in our logs."), sink.id)

    async def stop_answer(self, why: str | None) -> None:
        """End the answer in flight (if any); the relay bills what was produced. `why` is the usage
        status; None when the server itself cancels (past its shutdown grace)."""
        task = self.task
        if task is None or task.done() or (why == "client_cancelled" and self.sink.ended):
            return  # nothing in flight, or a late cancel: the answer is complete and billed
        if why is not None:
            self.sink.stopped = why
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, ClientGone):
            pass

    async def send_text(self, text: str) -> None:
        if self.closed:
            raise ClientGone()
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError:  # uvicorn's ClientDisconnected: the socket closed under us
            self.closed = True
            raise ClientGone() from None

    async def send_error(self, exc: ApiError, answer_id: str | None = None) -> None:
        frame = {"type": "error", **({"id": answer_id} if answer_id else {}), **exc.body()}
        try:
            await self.send_text(orjson.dumps(frame).decode())
        except ClientGone:
            pass

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except OSError:
            pass

    # --- revocation, expiry and shutdown --------------------------------------------------------

    def _watch_expiry(self, key) -> None:
        """Close the socket when its key expires; called again when the key changes (a rotation sets
        the old key's expiry to the end of its grace period)."""
        if (self.expiry[0] if self.expiry else None) == key.expires_at:
            return
        if self.expiry is not None:
            self.expiry[1].cancel()
        self.expiry = None
        if key.expires_at is not None and not self.closed:
            self.expiry = key.expires_at, asyncio.ensure_future(self._close_at(key.expires_at))

    async def _close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        # Expired by definition: close without asking the key store (a lookup it could delay or fail).
        if not self.closed:
            await self.stop_answer("key_revoked")
            await self.close(REFUSED, "the API key has expired")

    async def revoke_if_gone(self) -> None:
        if self.closed or await _check(self.credential) is not None:
            return
        await self.stop_answer("key_revoked")
        await self.close(REFUSED, "the API key was revoked or has expired")

    async def _drain_on(self, draining: asyncio.Event) -> None:
        """SIGTERM: finish the answer in flight (the server waits up to its grace), then close."""
        await draining.wait()
        self.draining = True
        if self.task is not None:
            await asyncio.wait({self.task})
        await self.close(1012, "the server is restarting; reconnect")


RECHECK_CONCURRENCY = 4  # key lookups of one sweep at a time: the thread pool also serves /v1
_sweep: asyncio.Task | None = None
_sweep_again = False


_closing: set[asyncio.Task] = set()  # sockets being closed for their key (at most one task per open socket)


async def _check(credential: tuple[str, str]) -> KeyInfo | None:
    """The socket's credential now: a key by its stored (prefix, SHA-256), no plaintext kept; an OAuth token
    or a JWT (prefix "") by the token itself, which a re-check may have to verify again."""
    prefix, value = credential
    return await akey_info_stored(prefix, value) if prefix else await credential_info(value)


async def _recheck(credential: tuple[str, str]) -> None:
    try:
        key = await _check(credential)  # a cache lookup; a database query only for an invalidated key
    except Exception:  # the key store failing: the next event, request or expiry checks again
        log.exception("re-checking the key of open sockets failed")
        return
    for socket in list(_sockets.get(credential, ())):
        if key is not None:
            socket._watch_expiry(key)  # its expiry may have changed (a rotation's grace period)
            continue
        # Each socket closes on its own: a client that does not read holds its close up to
        # the close timeout, never the sweep and the other keys' sockets behind it.
        task = asyncio.ensure_future(socket.revoke_if_gone())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


async def _sweep_keys() -> None:
    """Re-check the key of every open socket, a few lookups at a time; once more if keys changed
    again meanwhile (the sweep may have read a key before that change)."""
    global _sweep_again
    while True:
        _sweep_again = False
        credentials_ = list(_sockets)
        for start in range(0, len(credentials_), RECHECK_CONCURRENCY):
            await asyncio.gather(*(_recheck(c) for c in credentials_[start:start + RECHECK_CONCURRENCY]))
        if not _sweep_again:
            return


def _on_keys_event(_payload: dict) -> None:
    """A key changed somewhere (or the bus reconnected): re-check the key of every open socket.

    One sweep at a time, whatever the number of events: a burst of key edits (each clears the
    key cache, so each re-check is a database lookup) must not become events x sockets lookups."""
    global _sweep, _sweep_again
    if not _sockets:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # Published from a thread: a management API or admin view of this very process (the bus
        # does not echo a process's own events back to it). Its sockets are re-checked on their loop.
        if _loop is not None:
            try:
                _loop.call_soon_threadsafe(_on_keys_event, _payload)
            except RuntimeError:  # the loop has closed: no socket left to check
                pass
        return
    if _sweep is not None and not _sweep.done() and _sweep.get_loop() is loop:
        _sweep_again = True
        return
    _sweep = loop.create_task(_sweep_keys())


bus.subscribe("keys", _on_keys_event)
