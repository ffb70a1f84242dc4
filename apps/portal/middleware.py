"""Which language a request is answered in."""

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

# Machine-facing paths answer in English whatever the browser says, as OpenAI's API does.
ENGLISH_ONLY = ("/api/", "/v1/", "/metrics")


class PortalLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware (cookie, then Accept-Language, then LANGUAGE_CODE "ru") for the portal;
    English for the API; the admin in English unless the person chose a language in the portal."""

    def process_request(self, request):
        path = request.path_info
        if path.startswith(ENGLISH_ONLY) or (
                path.startswith("/admin/") and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        else:
            super().process_request(request)
