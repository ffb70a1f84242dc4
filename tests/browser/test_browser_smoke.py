"""The browser set-up itself: Chromium starts offline-safe and renders the portal in both languages."""


def test_login_page_renders_in_russian_and_english(portal, page_for):
    ru = page_for("ru")
    ru.goto(portal.base_url + "/accounts/login/")
    assert ru.locator("html").get_attribute("lang") == "ru"
    assert ru.locator("input[name=username]").is_visible()

    en = page_for("en")
    en.goto(portal.base_url + "/accounts/login/")
    assert en.locator("html").get_attribute("lang") == "en"
    assert en.locator("input[type=password]").is_visible()
