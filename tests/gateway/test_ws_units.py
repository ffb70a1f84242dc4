"""Fast unit tests (no server) of the pieces the WebSocket and relay items rest on: the log
filter that drops query strings, header values that cannot break a response."""

import logging


def test_the_log_filter_strips_query_strings_from_uvicorn_lines_and_messages():
    from xrouter_project.log_filters import StripQueryStrings

    f = StripQueryStrings()
    accepted = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                                 ("127.0.0.1:5", "/v1/realtime/chat?api_key=xr-abc-secret"), None)
    assert f.filter(accepted) is True
    assert accepted.getMessage() == '127.0.0.1:5 - "WebSocket /v1/realtime/chat" [accepted]'
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/v1/models?key=xr-abc-secret", "1.1", 200), None)
    f.filter(access)
    assert "secret" not in access.getMessage() and "/v1/models" in access.getMessage()
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /a/b?token=xr-1 then /c?d=e done", None, None)
    f.filter(plain)
    assert plain.getMessage() == "GET /a/b then /c done"
    untouched = logging.LogRecord("x", logging.INFO, __file__, 1, "is it %s?", ("ok",), None)
    f.filter(untouched)
    assert untouched.getMessage() == "is it ok?"


def test_header_values_that_are_not_latin1_are_percent_encoded():
    from apps.gateway.http import header_list

    assert header_list({"x-xrouter-route": "alias:гигачат;gigachat/GigaChat-2-Max", "x-request-id": "abc"}) == [
        (b"x-xrouter-route", b"alias:%D0%B3%D0%B8%D0%B3%D0%B0%D1%87%D0%B0%D1%82;gigachat/GigaChat-2-Max"),
        (b"x-request-id", b"abc"),
    ]
    assert header_list({"x-a": "line\r\nbreak"}) == [(b"x-a", b"line%0D%0Abreak")]
