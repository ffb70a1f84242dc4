"""The OIDC signing key: generated into var/ in development, required under XROUTER_ENV=production
(xrouter.E005), and the OAuth settings refuse values beyond the promised limits."""

from cryptography.fernet import Fernet

from tests.config.test_production_switch import STRONG_KEY, run


def test_production_refuses_to_start_without_the_oidc_key_file(tmp_path):
    missing = tmp_path / "nowhere.pem"
    result = run(["manage.py", "check", "--deploy"], XROUTER_ENV="production", DJANGO_SECRET_KEY=STRONG_KEY,
                 XROUTER_FERNET_KEYS=Fernet.generate_key().decode(), XROUTER_OIDC_RSA_KEY_FILE=str(missing))
    assert result.returncode != 0
    assert "xrouter.E005" in result.stderr and "XROUTER_OIDC_RSA_KEY_FILE" in result.stderr
    assert not missing.exists()  # production never makes one up


def test_development_generates_the_key_once(tmp_path):
    path = tmp_path / "var" / "oidc.pem"
    show = ["-c", "from django.conf import settings; import django; django.setup(); "
                  "print(settings.OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY'].splitlines()[1])"]
    first = run(show, DJANGO_SETTINGS_MODULE="xrouter_project.settings", XROUTER_OIDC_RSA_KEY_FILE=str(path))
    assert first.returncode == 0, first.stderr
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----") and oct(path.stat().st_mode & 0o777) == "0o600"
    second = run(show, DJANGO_SETTINGS_MODULE="xrouter_project.settings", XROUTER_OIDC_RSA_KEY_FILE=str(path))
    assert second.stdout == first.stdout  # the same key, read back


def test_token_lifetimes_beyond_the_limits_are_refused():
    for name, value in (("XROUTER_OAUTH_ACCESS_TOKEN_SECONDS", "3601"), ("XROUTER_OAUTH_CODE_SECONDS", "61")):
        result = run(["manage.py", "check"], **{name: value})
        assert result.returncode != 0 and name in result.stderr
