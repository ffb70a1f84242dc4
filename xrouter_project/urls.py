from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from apps.accounts.api import MembershipViewSet, OrganisationViewSet
from apps.alerts.views import alertmanager_webhook
from apps.gateway import openapi
from apps.keys.api import ApiKeyViewSet
from apps.limits.addresses import limited, too_many_oauth
from apps.oauth import urls as oauth_urls
from apps.oauth.api import ApplicationViewSet
from apps.portal.urls import auth_urlpatterns
from apps.usage.api import UsageViewSet

# The token endpoint, limited per client address (apps.limits.addresses; apps.oauth sits below apps.limits,
# so the limit is put on its route here).
for _pattern in oauth_urls.urlpatterns:
    if _pattern.name == "token":
        _pattern.callback = limited("token", too_many_oauth)(_pattern.callback)

# The admin modules, discovered here rather than at start-up (apps.accounts.apps.TwoFactorAdminConfig).
admin.autodiscover()

router = DefaultRouter()
router.register("keys", ApiKeyViewSet, basename="key")
router.register("usage", UsageViewSet, basename="usage")
router.register("organisations", OrganisationViewSet, basename="organisation")
router.register(r"organisations/(?P<organisation_pk>\d+)/members", MembershipViewSet, basename="membership")
router.register("oauth-applications", ApplicationViewSet, basename="oauth-application")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/alerts/alertmanager", alertmanager_webhook, name="alertmanager-webhook"),
    path("api/v1/billing/", include("apps.billing.urls")),
    path("api/v1/", include(router.urls)),
    # OAuth 2.0 and OpenID Connect (apps.oauth): /o/authorize/, /o/token/, /o/.well-known/openid-configuration …
    path("o/", include(oauth_urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view: Swagger UI's start-up script comes from a URL, not inline (the CSP allows no inline script).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    # Documentation only: /v1 is served by apps.gateway.app (see xrouter_project/asgi.py).
    path("v1/chat/completions", openapi.ChatCompletionsDoc.as_view()),
    path("v1/responses", openapi.ResponsesDoc.as_view()),
    path("v1/embeddings", openapi.EmbeddingsDoc.as_view()),
    path("v1/models", openapi.ModelsDoc.as_view()),
    path("v1/xrouter/tokenize", openapi.TokenizeDoc.as_view()),
    path("v1/models/<path:model_id>", openapi.ModelDoc.as_view()),
    # The developer portal (apps.portal): accounts, the language switch, and its pages at /.
    *auth_urlpatterns,
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("apps.portal.urls")),
]
