"""The toolkit's endpoints we offer, under /o/: authorize (code + PKCE), token, revocation,
introspection, and OpenID Connect discovery, keys and userinfo. Not its application-management
pages (applications belong to organisations here: the portal and /api/v1/oauth-applications do that),
nor device, dynamic registration or logout flows."""

from django.urls import path, re_path
from oauth2_provider import views

from .views import IntrospectTokenView

app_name = "oauth2_provider"  # the toolkit reverses its own URL names in this namespace

urlpatterns = [
    path("authorize/", views.AuthorizationView.as_view(), name="authorize"),
    path("token/", views.TokenView.as_view(), name="token"),
    path("revoke_token/", views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", IntrospectTokenView.as_view(), name="introspect"),
    re_path(r"^\.well-known/openid-configuration/?$", views.ConnectDiscoveryInfoView.as_view(),
            name="oidc-connect-discovery-info"),
    path(".well-known/jwks.json", views.JwksInfoView.as_view(), name="jwks-info"),
    path("userinfo/", views.UserInfoView.as_view(), name="user-info"),
]
