from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from apps.limits.addresses import limited

from . import account, login, members, oauth_views, oidc, security, views

app_name = "portal"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:pk>/revoke/", views.key_revoke_view, name="key_revoke"),
    path("keys/<int:pk>/rotate/", views.key_rotate_view, name="key_rotate"),
    path("models/", views.models, name="models"),
    path("playground/", views.playground, name="playground"),
    path("usage/", views.usage, name="usage"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("signup/", limited("signup")(views.signup), name="signup"),
    path("signup/confirm/<uidb64>/<token>/", views.signup_confirm, name="signup_confirm"),
    path("security/", security.security, name="security"),
    path("account/", account.account, name="account"),
    path("account/export.json", account.account_export_view, name="account_export"),
    path("account/delete/", account.account_delete_view, name="account_delete"),
    path("members/", members.members_home, name="members_home"),
    path("members/<int:organisation_pk>/", members.members, name="members"),
    path("members/<int:organisation_pk>/invite/", members.invite, name="invite"),
    path("members/<int:organisation_pk>/<int:pk>/role/", members.member_role, name="member_role"),
    path("members/<int:organisation_pk>/<int:pk>/remove/", members.member_remove, name="member_remove"),
    path("members/<int:organisation_pk>/invitations/<int:pk>/revoke/", members.invitation_revoke_view,
         name="invitation_revoke"),
    path("invitation/", members.invitation, name="invitation"),
    path("oauth-apps/", oauth_views.oauth_apps, name="oauth_apps"),
    path("oauth-apps/<int:pk>/", oauth_views.oauth_app_edit, name="oauth_app_edit"),
    path("oauth-apps/<int:pk>/delete/", oauth_views.oauth_app_delete, name="oauth_app_delete"),
]

# Django's names (login, logout, password_reset…), as its auth views and templates expect them.
auth_urlpatterns = [
    path("accounts/login/", limited("login")(login.LoginView.as_view()), name="login"),
    path("accounts/login/code/", limited("login")(login.login_code), name="login_code"),
    path("accounts/login/oidc/", oidc.oidc_start, name="oidc_login"),
    path("accounts/login/oidc/callback/", oidc.oidc_callback, name="oidc_callback"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_reset/", auth_views.PasswordResetView.as_view(
        email_template_name="registration/password_reset_email.txt",
        subject_template_name="registration/password_reset_subject.txt"), name="password_reset"),
    path("accounts/password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("accounts/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(
        success_url=reverse_lazy("password_reset_complete")), name="password_reset_confirm"),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
