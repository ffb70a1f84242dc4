"""XRouter settings: environment variables over working defaults.

Nothing set gives a gateway that runs from a fresh clone: SQLite, in-process cache,
in-memory channel layer, Celery tasks inline. DATABASE_URL and REDIS_URL switch to
PostgreSQL and Redis. A malformed value stops the start with a message naming it.
"""

import base64
import hashlib
import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()


# The password of a URL (scheme://user:password@host): never printed, whatever the message.
# Up to the last "@" before a blank or a quote: a password may hold an unescaped "@" or "/".
URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s'\"]*:)[^\s'\"]*(@)")


def redact_url_passwords(text: str) -> str:
    return URL_PASSWORD.sub(r"\1***\2", text)


def _checked(name, parse, default):
    """Read NAME with `parse`; a bad value raises ImproperlyConfigured naming NAME (URL passwords redacted)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise ImproperlyConfigured(redact_url_passwords(f"Environment variable {name} is malformed: {raw!r} ({exc})")) from None


def _bool(raw):
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def env_bool(name, default=False):
    return _checked(name, _bool, default)


def env_int(name, default):
    return _checked(name, int, default)


def env_float(name, default):
    return _checked(name, float, default)


def env_list(name, default=()):
    return _checked(name, lambda raw: [p.strip() for p in raw.split(",") if p.strip()], list(default))


def _networks(raw):
    """Comma-separated CIDRs (a bare address is a /32 or /128), as strings in their canonical form."""
    return [str(ipaddress.ip_network(p.strip())) for p in raw.split(",") if p.strip()]


def env_secret(name, default=""):
    """NAME, or the contents of the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"Environment variable {name}_FILE: cannot read {path} ({exc})") from None
    return os.environ.get(name, default)


def _url(name, kind):
    def parse(raw):
        parsed = env.db_url_config(raw) if kind == "db" else env.cache_url_config(raw)
        if kind == "db" and not parsed.get("ENGINE", "").startswith("django.db.backends."):
            raise ValueError("use postgres://, postgresql:// or sqlite:///")
        return parsed

    return parse


def _environment(raw):
    if raw not in {"development", "production"}:
        raise ValueError("use development or production")
    return raw


def _limits_fail(raw):
    if raw not in {"open", "closed"}:
        raise ValueError("use open or closed")
    return raw


def _rate_or_empty(raw):
    """A rate as apps.common.rates reads it ("60/min", "20/h", "10/s"), or "off"."""
    if raw == "off":
        return ""
    if not re.fullmatch(r"\s*\d{1,12}\s*/\s*\d{0,6}\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*", raw.lower()):
        raise ValueError('use a rate such as "60/min" or "20/h", or "off"')
    return raw


def _positive_int(raw):
    value = int(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


# --- Core ---
# production refuses to start on the development defaults below (apps/common/checks.py).
XROUTER_ENV = _checked("XROUTER_ENV", _environment, "development")
DEBUG = env_bool("DEBUG", False)
DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key-change-me-in-production"  # nosec B105 # the development default; production refuses it
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", DEFAULT_SECRET_KEY)
# Old keys after a rotation: sessions signed and secrets encrypted under them stay readable.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "apps.accounts.apps.TwoFactorAdminConfig",  # django.contrib.admin; staff need TOTP in production
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "channels",
    "django_prometheus",
    # Two-factor login (TOTP, and single-use recovery codes) for the portal and the admin.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "apps.common",
    "apps.audit",
    "apps.accounts",
    "apps.keys",
    "apps.oauth",
    "apps.providers",
    "apps.routing",
    "apps.usage",
    "apps.privacy",
    "apps.billing",
    "apps.gateway",
    "apps.alerts",
    "apps.emulators",
    "apps.portal",
    "xrouter_project",  # the project's own commands (run_demo)
]

# The usage writer needs only its own app: loading the admin, DRF and the rest would triple its memory.
if os.environ.get("XROUTER_ROLE") == "writer":
    INSTALLED_APPS = ["apps.usage"]

MIDDLEWARE = [
    "apps.common.middleware.RequestIdMiddleware",  # every log line of a request names it (X-Request-ID)
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # request.client_address, honouring X-Forwarded-For from XROUTER_TRUSTED_PROXIES only; before
    # SecurityMiddleware, because it also drops X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER) from anyone else.
    "apps.common.middleware.ClientAddressMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.common.middleware.ContentSecurityPolicyMiddleware",  # XROUTER_CSP
    "apps.common.middleware.AdminNetworksMiddleware",  # XROUTER_ADMIN_ALLOW
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # LocaleMiddleware's rules, except that /api and the /v1 docs stay English (apps/portal/middleware.py).
    "apps.portal.middleware.PortalLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the session passed the code step
    "apps.audit.services.AuditContextMiddleware",  # the audit log's actor and client address
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "xrouter_project.urls"
ASGI_APPLICATION = "xrouter_project.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

TIME_ZONE = "Europe/Moscow"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise also serves what the finders find (static/ and the apps'), so `manage.py serve` works without
# collectstatic and never serves a stale copy of a file; collected files (the Dockerfile) still serve too.
WHITENOISE_USE_FINDERS = True

# --- Database ---
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": _checked("DATABASE_URL", _url("DATABASE_URL", "db"), None)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60))
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        # A database that does not answer must fail fast: the gateway then serves its last good
        # catalog (XROUTER_STALE_MAX) instead of holding requests for the OS's TCP timeout.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "connect_timeout", env_int("XROUTER_DB_CONNECT_TIMEOUT", 3))
        # Behind PgBouncer in transaction mode a cursor cannot outlive its transaction (README, "Scaling out").
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("XROUTER_PGBOUNCER", False)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
            # A file, not memory: the end-to-end tests' server process must see the test data.
            "TEST": {"NAME": str(BASE_DIR / "var" / "test.sqlite3")},
        }
    }

# --- Redis: cache, channel layer, Celery broker, usage stream, pub/sub ---
REDIS_URL = os.environ.get("REDIS_URL", "")
# Every Redis key, stream, channel and queue XRouter owns starts with this, so two deployments
# (staging and production, say) can share one Redis without hearing each other.


def _namespace(raw):
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", raw):
        raise ValueError("use 1 to 64 letters, digits, '_', '.' or '-'")
    return raw


def _redis_url(raw):
    if raw.split("://", 1)[0] not in {"redis", "rediss", "unix"}:
        raise ValueError("use redis://, rediss:// or unix://")
    return raw


REDIS_NAMESPACE = _checked("XROUTER_REDIS_NAMESPACE", _namespace, "xrouter")
if REDIS_URL:
    _checked("REDIS_URL", _redis_url, None)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": REDIS_NAMESPACE}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_NAMESPACE}:asgi"}}}
    # Sessions live in Redis too (every process sees them; no session table to sweep). Without Redis
    # they stay in the database, which, unlike the in-process cache, every process shares.
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ---
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_DEFAULT_QUEUE = REDIS_NAMESPACE
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 120)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 100)
CELERY_BEAT_SCHEDULE = {
    "provider-health-checks": {
        "task": "apps.providers.tasks.check_all_providers_task",
        "schedule": env_float("XROUTER_HEALTH_CHECK_INTERVAL", 60.0),
    },
    "beat-heartbeat": {"task": "apps.common.tasks.beat_heartbeat", "schedule": 30.0},  # apps/common/beat.py; read by /readyz
    # Billing (apps/billing/tasks.py): the last days' roll-ups, the price in effect today (a new
    # effective price reaches the gateways within this interval of midnight), budget thresholds.
    "billing-rollups": {"task": "apps.billing.tasks.rollup_recent_task",
                        "schedule": env_float("XROUTER_ROLLUP_INTERVAL", 900.0)},
    "billing-prices": {"task": "apps.billing.tasks.current_prices_task",
                       "schedule": env_float("XROUTER_PRICES_INTERVAL", 300.0)},
    "billing-budget-notices": {"task": "apps.billing.tasks.budget_notices_task",
                               "schedule": env_float("XROUTER_BUDGET_CHECK_INTERVAL", 300.0)},
    # Months ahead exist long before they are needed; a missed run costs nothing (the DEFAULT partition).
    "usage-partitions": {"task": "apps.usage.tasks.usage_partitions_task", "schedule": 6 * 3600.0},
    "usage-retention": {"task": "apps.usage.tasks.usage_retention_task", "schedule": 24 * 3600.0},
    # Personal data (apps/privacy/tasks.py): prompt-log rows past their retention, user fields of old usage rows.
    "prompt-log-retention": {"task": "apps.privacy.tasks.prompt_log_retention_task", "schedule": 3600.0},
    "usage-forget-users": {"task": "apps.privacy.tasks.usage_forget_users_task", "schedule": 24 * 3600.0},
    # Each model's characters per token, from its recent usage rows, for the gateway's estimates.
    "token-ratios": {"task": "apps.routing.tasks.token_ratios_task",
                     "schedule": env_float("XROUTER_TOKEN_RATIO_INTERVAL", 3600.0)},
}
CELERY_TIMEZONE = TIME_ZONE

# --- REST framework (management API under /api/v1) ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "apps.oauth.authentication.OAuthTokenAuthentication",  # `xro-` tokens only
        "apps.keys.authentication.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Cursors, newest first: 50 a page, ?page_size= up to 200.
    "DEFAULT_PAGINATION_CLASS": "apps.common.pagination.NewestFirstCursorPagination",
    "EXCEPTION_HANDLER": "apps.common.errors.drf_exception_handler",
    # Requests per caller through the rate limiter (apps.limits.addresses; XROUTER_RATE_API).
    "DEFAULT_THROTTLE_CLASSES": ["apps.limits.addresses.LimiterThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "XRouter API",
    "DESCRIPTION": "OpenAI-compatible gateway (/v1) and management API (/api/v1).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "OAS_VERSION": "3.1.0",  # /v1 bodies are pydantic's JSON Schema (apps/gateway/openapi.py)
    # Swagger UI from drf-spectacular-sidecar's static files: no CDN (closed networks). No Redoc view:
    # drf-spectacular's Redoc page loads Google Fonts.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"MembershipRoleEnum": "apps.accounts.models.Membership.Role"},
}

# --- Outbound requests to URLs tenants enter (webhooks; apps/common/fetch.py) ---
# CIDRs that may be fetched although not public (loopback, private): e.g. 127.0.0.0/8 in tests, or an
# internal receiver's network. Plain http is allowed only to these.
XROUTER_FETCH_ALLOW = _checked("XROUTER_FETCH_ALLOW", _networks, [])

# --- Secrets at rest ---
# Fernet keys, comma separated, newest first (MultiFernet encrypts with the first, decrypts with
# any). Without them a key is derived from SECRET_KEY (HKDF) so a fresh clone works; production
# must set XROUTER_FERNET_KEYS. Keys derived from SECRET_KEY_FALLBACKS join for decryption, so
# rotating SECRET_KEY keeps derived-key credentials readable.


def _derive_bus_key(secret: str) -> str:
    from apps.common.signing import derive_key  # no Django in it: the lean writer derives the same key

    return derive_key(secret)


def _derived_fernet_key(secret: str) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"xrouter fernet v1").derive(secret.encode())
    return base64.urlsafe_b64encode(raw).decode()


FERNET_KEYS_CONFIGURED = env_list("XROUTER_FERNET_KEYS") or [k for k in [env_secret("XROUTER_FERNET_KEY")] if k]
FERNET_KEYS = [*(FERNET_KEYS_CONFIGURED or [_derived_fernet_key(SECRET_KEY)]),
               *(_derived_fernet_key(old) for old in SECRET_KEY_FALLBACKS)]
if XROUTER_ENV == "development" and not FERNET_KEYS_CONFIGURED:
    # Decrypt-only: what development databases were encrypted with before HKDF (a bare sha256).
    FERNET_KEYS.append(base64.urlsafe_b64encode(hashlib.sha256(("fernet:" + SECRET_KEY).encode()).digest()).decode())

# --- Signed messages through Redis (apps/common/signing.py) ---
# HMAC keys, comma separated (at least 32 characters each): the first signs bus events and usage stream
# entries, any verifies (rotation). Required under XROUTER_ENV=production (xrouter.E006); in development a
# key is derived from SECRET_KEY (and its fallbacks, which still verify), so signing is always on.
BUS_HMAC_KEYS_CONFIGURED = env_list("XROUTER_BUS_HMAC_KEYS") or [
    k.strip() for k in env_secret("XROUTER_BUS_HMAC_KEYS").split(",") if k.strip()]
BUS_HMAC_KEYS = BUS_HMAC_KEYS_CONFIGURED or [_derive_bus_key(SECRET_KEY), *(_derive_bus_key(old) for old in SECRET_KEY_FALLBACKS)]

# --- Gateway (/v1 hot path) ---
XROUTER = {
    "MAX_BODY_BYTES": env_int("XROUTER_MAX_BODY_BYTES", 4 * 1024 * 1024),
    "CONNECT_TIMEOUT": env_float("XROUTER_UPSTREAM_CONNECT_TIMEOUT", 10.0),
    "READ_TIMEOUT": env_float("XROUTER_UPSTREAM_READ_TIMEOUT", 120.0),
    "TOTAL_TIMEOUT": env_float("XROUTER_UPSTREAM_TOTAL_TIMEOUT", 600.0),
    "POOL_SIZE": env_int("XROUTER_UPSTREAM_POOL_SIZE", 10000),
    "CONCURRENCY_WAIT": env_float("XROUTER_CONCURRENCY_WAIT", 2.0),
    # A streamed answer whose client has not taken a send for this long (between 1× and 2×) is cut.
    "CLIENT_SEND_TIMEOUT": env_float("XROUTER_CLIENT_SEND_TIMEOUT", 60.0),
    # Bytes a stream (SSE, WebSocket) may keep queued unsent in the kernel (TCP_NOTSENT_LOWAT); 0 = the OS's (no bound).
    "STREAM_SEND_BUFFER": env_int("XROUTER_STREAM_SEND_BUFFER", 64 * 1024),
    "CONFIG_TTL": env_float("XROUTER_CONFIG_TTL", 300.0),
    # Provider health-check results kept for the console's health page (a check a minute per provider).
    "HEALTH_HISTORY_DAYS": env_int("XROUTER_HEALTH_HISTORY_DAYS", 7),
    "USAGE_FLUSH_INTERVAL": env_float("XROUTER_USAGE_FLUSH_INTERVAL", 0.5),
    # Keys used since the last write get last_used_at in one UPDATE per process this often (seconds).
    "LAST_USED_INTERVAL": env_float("XROUTER_LAST_USED_INTERVAL", 30.0),
    "USAGE_STREAM": os.environ.get("XROUTER_USAGE_STREAM") or f"{REDIS_NAMESPACE}:usage",
    "REDIS_NAMESPACE": REDIS_NAMESPACE,
    "SHUTDOWN_GRACE": env_float("XROUTER_SHUTDOWN_GRACE", 30.0),
    # Outages: how long the last good catalog and cached keys may serve while the database is unreachable.
    "STALE_MAX": env_float("XROUTER_STALE_MAX", 900.0),
    # Usage batches Redis cannot take are spooled here (bounded) and replayed into Redis.
    "SPOOL_DIR": os.environ.get("XROUTER_SPOOL_DIR") or str(BASE_DIR / "var" / "spool"),
    "SPOOL_MAX_MB": env_int("XROUTER_SPOOL_MAX_MB", 512),
    # Raw usage rows older than this many whole months are dropped, a month's partition at a time
    # (0 keeps everything); the daily roll-ups are another table and stay.
    "USAGE_RETENTION_MONTHS": env_int("XROUTER_USAGE_RETENTION_MONTHS", 0),
    "USAGE_PARTITIONS_AHEAD": env_int("XROUTER_USAGE_PARTITIONS_AHEAD", 2),
    # Bounds on every Redis command and connect of the gateway (seconds): a hanging Redis costs this, not forever.
    "REDIS_TIMEOUT": env_float("XROUTER_REDIS_TIMEOUT", 2.0),
    "REDIS_CONNECT_TIMEOUT": env_float("XROUTER_REDIS_CONNECT_TIMEOUT", 1.0),
    # What one request or one upstream answer may make us hold (issue 8 items 6 and 8).
    "MAX_MESSAGES": env_int("XROUTER_MAX_MESSAGES", 2048),
    "MAX_PROMPT_CHARS": env_int("XROUTER_MAX_PROMPT_CHARS", 1_000_000),
    "MAX_UPSTREAM_BODY_BYTES": env_int("XROUTER_MAX_UPSTREAM_BODY_BYTES", 16 * 1024 * 1024),
    "MAX_STREAM_BYTES": env_int("XROUTER_MAX_STREAM_BYTES", 64 * 1024 * 1024),
    # Requests one worker serves at once; beyond, 503 with Retry-After at once (load is shed, not queued).
    "MAX_INFLIGHT": env_int("XROUTER_MAX_INFLIGHT", 4000),
    # Personal data (apps/privacy; README, "Personal data (152-FZ)"): the prompt log is off by default; when on,
    # requests under a policy of `mask` or stricter are kept, masked, for PROMPT_LOG_DAYS. Usage rows lose
    # their user fields after USAGE_USER_RETENTION_DAYS (0 keeps them).
    "LOG_PROMPTS": env_bool("XROUTER_LOG_PROMPTS", False),
    "PROMPT_LOG_DAYS": env_int("XROUTER_PROMPT_LOG_DAYS", 30),
    "USAGE_USER_RETENTION_DAYS": env_int("XROUTER_USAGE_USER_RETENTION_DAYS", 365),
    # Rate limits (apps/limits) when Redis cannot answer within LIMITS_TIMEOUT seconds: `open` admits
    # through a per-process limiter holding limit ÷ EXPECTED_REPLICAS (gateway processes in all:
    # workers × replicas), `closed` answers 503.
    "LIMITS_FAIL": _checked("XROUTER_LIMITS_FAIL", _limits_fail, "closed" if XROUTER_ENV == "production" else "open"),
    "LIMITS_TIMEOUT": env_float("XROUTER_LIMITS_TIMEOUT", 1.0),
    "EXPECTED_REPLICAS": _checked("XROUTER_EXPECTED_REPLICAS", _positive_int, 1),
    # The same limiter for Django's side (apps/limits/addresses.py): POSTs per client address to sign-up,
    # login and the OAuth token endpoint, and management API requests per caller; "off" turns one off.
    "ADDRESS_RATES": {
        "signup": _checked("XROUTER_RATE_SIGNUP", _rate_or_empty, "20/h"),
        "login": _checked("XROUTER_RATE_LOGIN", _rate_or_empty, "60/min"),
        "token": _checked("XROUTER_RATE_TOKEN", _rate_or_empty, "600/min"),
        "api": _checked("XROUTER_RATE_API", _rate_or_empty, "6000/min"),
    },
    # Proxies whose X-Forwarded-For is believed (CIDRs); the client address comes from apps.common.client_address.
    "TRUSTED_PROXIES": _checked("XROUTER_TRUSTED_PROXIES", _networks, []),
    # /metrics answers clients in METRICS_ALLOW (CIDRs; the resolved client address) or with
    # `Authorization: Bearer METRICS_TOKEN`; anyone else gets 403. Per-key series only when asked for.
    "METRICS_ALLOW": _checked("XROUTER_METRICS_ALLOW", _networks, ["127.0.0.0/8", "::1/128"]),
    "METRICS_TOKEN": env_secret("XROUTER_METRICS_TOKEN"),
    "METRICS_PER_KEY": env_bool("XROUTER_METRICS_PER_KEY", False),
    # Alertmanager's webhook (apps/alerts) and where alerts are forwarded.
    "ALERTMANAGER_TOKEN": env_secret("XROUTER_ALERTMANAGER_TOKEN"),
    "ALERTMANAGER_BASIC_AUTH": env_secret("XROUTER_ALERTMANAGER_BASIC_AUTH"),
    "ALERT_EMAILS": env_list("XROUTER_ALERT_EMAILS"),
    "ALERT_WEBHOOK_URL": os.environ.get("XROUTER_ALERT_WEBHOOK_URL", ""),
    "ALERT_TELEGRAM_TOKEN": env_secret("XROUTER_ALERT_TELEGRAM_TOKEN"),
    "ALERT_TELEGRAM_CHAT_ID": os.environ.get("XROUTER_ALERT_TELEGRAM_CHAT_ID", ""),
    "ALERT_TELEGRAM_BASE_URL": os.environ.get("XROUTER_ALERT_TELEGRAM_BASE_URL", "https://api.telegram.org"),
}
for _name in ("USAGE_RETENTION_MONTHS", "USAGE_PARTITIONS_AHEAD", "PROMPT_LOG_DAYS", "USAGE_USER_RETENTION_DAYS"):
    if XROUTER[_name] < 0:
        raise ImproperlyConfigured(f"XROUTER_{_name} must be 0 or more, not {XROUTER[_name]}")

# --- Developer portal (apps.portal, served at /) ---
# Russian by default, English switchable (the language cookie set by /i18n/setlang/).
LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# E-mail: sent through EMAIL_HOST when it names an SMTP server, else written as files into
# XROUTER_EMAIL_DIR when that is set (the browser tests read them), else printed to the console.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_FILE_PATH = os.environ.get("XROUTER_EMAIL_DIR", "")
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.filebased.EmailBackend" if EMAIL_FILE_PATH
                 else "django.core.mail.backends.console.EmailBackend")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "XRouter <noreply@localhost>")
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)  # also the sign-up confirmation link's life


def _signup(raw):
    if raw not in {"open", "invite", "domains"}:
        raise ValueError("use open, invite or domains")
    return raw


def _discovery_url(raw):
    # https only: the ID tokens' keys are fetched from what it names (http for loopback, as in the tests).
    url = urlsplit(raw)
    if not (url.scheme == "https" or (url.scheme == "http" and url.hostname in {"127.0.0.1", "localhost", "::1"})):
        raise ValueError("use an https:// URL (http:// only for loopback)")
    return raw


XROUTER |= {
    # Who may sign up: anyone (open), nobody without an invitation (invite), or addresses of SIGNUP_DOMAINS (domains).
    "SIGNUP": _checked("XROUTER_SIGNUP", _signup, "invite" if XROUTER_ENV == "production" else "open"),
    "SIGNUP_DOMAINS": [d.lower().lstrip("@") for d in env_list("XROUTER_SIGNUP_DOMAINS")],
    # Login lock-out: this many failures for one username from one address within the window refuse
    # further attempts for the window (seconds). Counted in the Django cache.
    "LOGIN_MAX_FAILURES": env_int("XROUTER_LOGIN_MAX_FAILURES", 5),
    "LOGIN_LOCKOUT_SECONDS": env_int("XROUTER_LOGIN_LOCKOUT_SECONDS", 900),
    # Staff reach the admin only after the TOTP code step (and are sent to enrol a device first).
    "STAFF_TOTP": XROUTER_ENV == "production",
    # An invitation link works once, for this many days.
    "INVITATION_DAYS": env_int("XROUTER_INVITATION_DAYS", 7),
    # Login through an OpenID Connect provider: shown on the login page once the three are set.
    "OIDC_LOGIN": {
        "DISCOVERY_URL": _checked("XROUTER_OIDC_LOGIN_DISCOVERY_URL", _discovery_url, ""),
        "CLIENT_ID": os.environ.get("XROUTER_OIDC_LOGIN_CLIENT_ID", ""),
        "CLIENT_SECRET": env_secret("XROUTER_OIDC_LOGIN_CLIENT_SECRET"),
        "NAME": os.environ.get("XROUTER_OIDC_LOGIN_NAME", "OpenID Connect"),  # the button says "Sign in with NAME"
    },
}
OTP_TOTP_ISSUER = "XRouter"  # the name authenticator apps show beside the code
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a TOTP secret, its QR code or a recovery code

# --- OAuth 2.0 and OpenID Connect (apps.oauth, django-oauth-toolkit) ---
# The ID-token signing key (PEM, RSA). In development a missing file is generated once; XROUTER_ENV=production
# refuses to start without it (apps/common/checks.py, xrouter.E005).
OIDC_RSA_KEY_FILE = Path(os.environ.get("XROUTER_OIDC_RSA_KEY_FILE") or BASE_DIR / "var" / "oidc-rsa-key.pem")


def _oidc_rsa_key(path: Path) -> str:
    if path.is_file():
        return path.read_text()
    if XROUTER_ENV == "production":
        return ""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_bytes(pem)
    temporary.chmod(0o600)
    try:
        os.link(temporary, path)  # fails if another process got there first: everyone then signs with its key
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text()


def _at_most(limit):
    def parse(raw):
        value = int(raw)
        if not 0 < value <= limit:
            raise ValueError(f"use 1 to {limit}")
        return value

    return parse


OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth.AccessToken"  # nosec B105 # a setting's name, not a secret
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth.RefreshToken"  # nosec B105 # a setting's name, not a secret
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth.IDToken"  # nosec B105 # a setting's name, not a secret
OAUTH2_PROVIDER_GRANT_MODEL = "oauth.Grant"
OAUTH2_PROVIDER = {  # nosec B105 # holds settings whose names say TOKEN or PASSWORD, no secret
    # The five scopes of API keys (apps/keys/models.py SCOPES) and OpenID Connect's own.
    # (The descriptions are shown on the consent page, so translated.)
    "SCOPES": {
        "chat": gettext_lazy("Chat with models (/v1/chat/completions)"),
        "embeddings": gettext_lazy("Compute embeddings (/v1/embeddings)"),
        "models:read": gettext_lazy("List models (/v1/models)"),
        "usage:read": gettext_lazy("Read your usage (/api/v1/usage)"),
        "keys:manage": gettext_lazy("Manage your API keys (/api/v1/keys)"),
        "openid": gettext_lazy("Know who you are (OpenID Connect)"),
    },
    "DEFAULT_SCOPES": ["chat", "embeddings", "models:read"],
    "OAUTH2_VALIDATOR_CLASS": "apps.oauth.validators.XRouterOAuth2Validator",
    "OAUTH2_SERVER_CLASS": "apps.oauth.validators.XRouterServer",
    "APPLICATION_ADMIN_CLASS": "apps.oauth.admin.ApplicationAdmin",
    "ACCESS_TOKEN_GENERATOR": "apps.oauth.tokens.new_access_token",
    "REFRESH_TOKEN_GENERATOR": "apps.oauth.tokens.new_refresh_token",
    "ACCESS_TOKEN_EXPIRE_SECONDS": _checked("XROUTER_OAUTH_ACCESS_TOKEN_SECONDS", _at_most(3600), 3600),
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": _checked("XROUTER_OAUTH_CODE_SECONDS", _at_most(60), 60),
    "ID_TOKEN_EXPIRE_SECONDS": 3600,
    "REFRESH_TOKEN_EXPIRE_SECONDS": _checked("XROUTER_OAUTH_REFRESH_TOKEN_SECONDS", _at_most(90 * 86400), 30 * 86400),
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,  # a rotated refresh token presented again revokes its whole family
    "PKCE_REQUIRED": True,
    # RFC 9700: no implicit or password grant, no `plain` PKCE, no token in a query string, hashed tokens at rest.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    # A deploy-check warning, not an error: http stays in ALLOWED_REDIRECT_URI_SCHEMES for native apps' loopback
    # callbacks (RFC 8252), and apps.oauth.models.redirect_uri_problem refuses it for any other host.
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": False,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # http is allowed for loopback redirect URIs only (apps.oauth.models.redirect_uri_problem).
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "client_credentials", "refresh_token"],
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _oidc_rsa_key(OIDC_RSA_KEY_FILE) if os.environ.get("XROUTER_ROLE") != "writer" else "",
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
}


def _jwt_issuers(raw):
    """XROUTER_JWT_ISSUERS: a JSON list of {issuer, jwks_url, audience, organisation_claim, role_claim}."""
    import json

    issuers = json.loads(raw)
    if not isinstance(issuers, list):
        raise ValueError("a JSON list of issuers")
    parsed = []
    for entry in issuers:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k]
                                                  for k in ("issuer", "jwks_url", "audience")):
            raise ValueError("each issuer needs the strings issuer, jwks_url and audience")
        if not entry["jwks_url"].startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        parsed.append({"issuer": entry["issuer"], "jwks_url": entry["jwks_url"], "audience": entry["audience"],
                       "organisation_claim": str(entry.get("organisation_claim") or "org"),
                       "role_claim": str(entry.get("role_claim") or "role")})
    return parsed


# External identity providers whose JWT access tokens /v1 accepts (apps.oauth.external).
XROUTER["JWT_ISSUERS"] = _checked("XROUTER_JWT_ISSUERS", _jwt_issuers, [])

# --- Emulators (python manage.py run_emulators) ---
EMULATOR_HOST = os.environ.get("XROUTER_EMULATOR_HOST", "127.0.0.1")
EMULATOR_PORTS = {
    "gigachat": env_int("XROUTER_EMULATOR_GIGACHAT_PORT", 9101),
    "yandexgpt": env_int("XROUTER_EMULATOR_YANDEXGPT_PORT", 9102),
    "mts": env_int("XROUTER_EMULATOR_MTS_PORT", 9103),
    "tbank": env_int("XROUTER_EMULATOR_TBANK_PORT", 9104),
}

# --- Logging: JSON lines; prompts and answers never logged by default ---
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    # No query string reaches a log line (a client may put a key there): xrouter_project/log_filters.py.
    "filters": {"strip_query": {"()": "xrouter_project.log_filters.StripQueryStrings"},
                "request_id": {"()": "xrouter_project.log_filters.RequestIdFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if env_bool("XROUTER_LOG_JSON", True) else "plain",
                    "filters": ["strip_query", "request_id"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- HTTP security (README, "Security"); `manage.py check --deploy` is clean under XROUTER_ENV=production ---
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Messages live in the session, never in a cookie of their own: the admin shows a new key's plaintext in one.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# No page runs inline script (the API docs use drf-spectacular's split view); inline style attributes stay
# allowed (the admin's and Swagger UI's own). 'self' covers the playground's same-origin WebSocket.
DEFAULT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
XROUTER["CSP"] = os.environ.get("XROUTER_CSP", DEFAULT_CSP)  # "off": no header
if XROUTER["CSP"] == "off":
    XROUTER["CSP"] = ""
# The admin answers clients in these networks only (the resolved client address); others get a 404. Any
# address in development; in production loopback and the private networks unless set (0.0.0.0/0,::/0: any).
PRIVATE_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
XROUTER["ADMIN_ALLOW"] = _checked("XROUTER_ADMIN_ALLOW", _networks,
                                  PRIVATE_NETWORKS if XROUTER_ENV == "production" else [])
# https as the proxy in front saw it (deploy/nginx/xrouter.conf), believed from XROUTER_TRUSTED_PROXIES only:
# apps.common.middleware.ClientAddressMiddleware drops the header from anyone else.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# oauth2_provider.W008: http redirect URIs stay for native apps' loopback callbacks (RFC 8252);
# apps.oauth.models.redirect_uri_problem refuses http for any other host.
SILENCED_SYSTEM_CHECKS = ["oauth2_provider.W008"]
if XROUTER_ENV == "production":
    # Production is reached over HTTPS (TLS ends at the proxy or ingress): cookies never travel in the clear,
    # plain http is redirected, and browsers are told to keep to HTTPS (XROUTER_HSTS_SECONDS, a year by
    # default; 0 turns HSTS off).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("XROUTER_SSL_REDIRECT", True)
    # Alertmanager posts to the gateway directly on the internal network (deploy/nginx/xrouter.conf refuses
    # it from outside); /healthz, /readyz, /metrics and /v1 never reach Django.
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/alerts/"]
    SECURE_HSTS_SECONDS = env_int("XROUTER_HSTS_SECONDS", 31_536_000)
    # The gateway's host alone by default: sibling hosts are not ours to bind, nor the preload list to join.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("XROUTER_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("XROUTER_HSTS_PRELOAD", False)
    # Those two are decisions, not oversights: the deploy check's reminders of them are silenced.
    SILENCED_SYSTEM_CHECKS += [check for check, on in (("security.W005", SECURE_HSTS_INCLUDE_SUBDOMAINS),
                                                       ("security.W021", SECURE_HSTS_PRELOAD)) if not on]

# --- Error tracking (xrouter_project/sentry.py; sentry-sdk is imported only when a DSN is set) ---
SENTRY_DSN = env_secret("SENTRY_DSN")
if SENTRY_DSN:
    from xrouter_project.sentry import init as _sentry_init

    _sentry_init(SENTRY_DSN, XROUTER_ENV, LOGGING)
