"""A newcomer's whole first visit in headless Chromium, in Russian and in English: sign up, confirm the
e-mail (the link from the e-mail file), sign in, create a key, call /v1 with the openai SDK, find the call
on the usage page (and by its x-request-id), then chat in the playground and watch the answer stream in
over the WebSocket, billed to the hour-long playground key that the keys page then lists."""

import re
import uuid

import pytest
from openai import OpenAI

# Nothing like the random hex of the usernames: Django's similarity validator would refuse it now and then.
PASSWORD = "Lymph-Quokka-Whist-Tzar"
MODEL = "gigachat/GigaChat-2-Max"
WORDS = {
    "ru": {"signup": "Регистрация", "sent": "Подтвердите адрес электронной почты", "sign_in": "Войти", "create_key": "Создать ключ",
           "playground": "Песочница", "done": "Готово.", "streaming": "Ответ поступает…"},
    "en": {"signup": "Create an account", "sent": "Confirm your e-mail address", "sign_in": "Sign in", "create_key": "Create the key",
           "playground": "Playground", "done": "Done.", "streaming": "Streaming…"},
}


@pytest.mark.parametrize("language", ["ru", "en"])
def test_sign_up_confirm_key_api_call_usage_and_a_streamed_playground_chat(portal, page_for, emulator_control,
                                                                           language):
    from apps.emulators.behaviour import LONG_ANSWER

    words = WORDS[language]
    name = f"journey-{language}-{uuid.uuid4().hex[:8]}"
    address = f"{name}@example.com"
    page = page_for(language)

    # Sign up, then confirm through the link in the e-mail.
    page.goto(portal.base_url + "/signup/")
    assert page.locator("h1").inner_text() == words["signup"]
    page.fill("input[name=username]", name)
    page.fill("input[name=email]", address)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == words["sent"], page.locator("main").inner_text()[:500]
    page.goto(portal.link_in_mail_to(address))
    assert page.url.startswith(portal.base_url + "/accounts/login/")

    # Sign in.
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click(f"button:has-text('{words['sign_in']}')")
    page.wait_for_url(portal.base_url + "/")
    assert page.locator("html").get_attribute("lang") == language

    # Create a key; it is shown once.
    page.goto(portal.base_url + "/keys/")
    page.fill("input[name=name]", "journey-key")
    page.click(f"button:has-text('{words['create_key']}')")
    plaintext = page.locator("#new-key").inner_text().strip()
    assert re.fullmatch(r"xr-[0-9a-f]{8}-\S+", plaintext)

    # Call the API with the openai SDK.
    client = OpenAI(base_url=portal.v1, api_key=plaintext, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello from the journey"}])
    request_id = raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content

    # The call is on the usage page (the writer stores it within a second or so), and found by its id.
    page.goto(portal.base_url + "/usage/")
    for _ in range(50):
        if page.locator(f"#latest code:text-is('{request_id}')").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator(f"#latest code:text-is('{request_id}')").count() == 1
    page.fill("#request-id", request_id)
    page.click("#lookup button[type=submit]")
    lookup = page.locator("table.lookup").inner_text()
    assert request_id in lookup and "ok (200)" in lookup and MODEL.split("/")[1] in lookup

    # The playground: the answer streams in, a chunk at a time (the emulator slowed to 150 ms a chunk).
    emulator_control("gigachat", chunk_delay_ms=150)
    page.click(f"header nav a:has-text('{words['playground']}')")
    page.select_option("#pg-key", "playground")
    page.select_option("#pg-model", MODEL)
    page.fill("#pg-message", "stream to me [long]")
    page.click("#pg-send")
    answer = page.locator("#pg-log li.assistant")
    # Part of the answer is on screen while the socket still streams.
    page.wait_for_function(
        """([full, streaming]) => {
             const a = document.querySelector('#pg-log li.assistant');
             return a && a.textContent.length > 0 && a.textContent.length < full.length
                    && document.querySelector('#pg-status').textContent === streaming;
           }""", arg=[LONG_ANSWER, words["streaming"]])
    page.wait_for_function("(done) => document.querySelector('#pg-status').textContent.startsWith(done)",
                           arg=words["done"], timeout=30_000)
    assert answer.inner_text() == LONG_ANSWER
    assert page.locator("#pg-log li.error").count() == 0

    # The playground key is listed with the person's keys, and the chat was billed to it.
    page.goto(portal.base_url + "/keys/")
    row = page.locator("tbody tr", has_text="playground")
    assert row.count() == 1
    prefix = re.search(r"xr-([0-9a-f]{8})-", row.inner_text()).group(1)
    page.goto(portal.base_url + "/usage/")
    for _ in range(50):
        if page.locator(f"#latest tr:has-text('xr-{prefix}-')").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator(f"#latest tr:has-text('xr-{prefix}-')").count() == 1
