"""Django settings for {{ cookiecutter.project_name }}.

Every value that differs between machines comes from the environment, or from the
``.env`` file beside ``manage.py`` (real environment variables win). ``.env.example``
documents each variable. The defaults are safe: DEBUG is off, and HTTPS-only settings
switch on together with ``DJANGO_HTTPS=true``.
"""

import zoneinfo
from email.utils import getaddresses
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

{% if cookiecutter.database != "postgresql" -%}
from tornado_wsgi_server.database_location import default_database
{% endif -%}
from tornado_wsgi_server.windows_groups import MIDDLEWARE as WINDOWS_GROUPS_MIDDLEWARE
from tornado_wsgi_server.windows_groups import windows_group_list, windows_group_map

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

# --- Core -----------------------------------------------------------------------------

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

PROJECT_NAME = {{ cookiecutter.project_name | jsonify }}

INSTALLED_APPS = [
    # The server's live status page for staff, linked from the admin index (listed before
    # the admin so its admin/index.html adds the link).
    "tornado_wsgi_server.status",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "{{ cookiecutter.project_slug }}",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise serves /static/ straight after the security headers are decided.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "{{ cookiecutter.project_slug }}.urls"
WSGI_APPLICATION = "{{ cookiecutter.project_slug }}.wsgi.application"
# Your own Tornado handlers (WebSockets...) served beside Django: see realtime.py.
TORNADO_ROUTES = "{{ cookiecutter.project_slug }}.realtime.TORNADO_ROUTES"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASES = {
{%- if cookiecutter.database == "postgresql" %}
    "default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/{{ cookiecutter.project_slug }}"),
{%- else %}
    # data/db.sqlite3; a db.sqlite3 left at the root by an earlier version is used until
    # the upgrade command moves it (database_location.py).
    "default": env.db_url_config(env.str("DATABASE_URL", default="")
                                 or f"sqlite:///{default_database(BASE_DIR).as_posix()}"),
{%- endif %}
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads and processes write to one file: WAL lets readers run beside
    # a writer, IMMEDIATE transactions take the write lock up front (no deadlock on
    # upgrade), and the timeout makes a writer wait instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_TIMEOUT", default=20),
        }
    )
# Keep each thread's connection open between requests (for SQLite too: opening one and
# setting it up costs more than a simple view), and check it before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that does not answer fails the request in seconds instead of holding
    # a thread for the operating system's connect time-out (about 21 s on Windows).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and sessions ---------------------------------------------------------------
{% if cookiecutter.cache == "redis" %}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("REDIS_URL", default="redis://127.0.0.1:6379/0"),
        "KEY_PREFIX": "{{ cookiecutter.project_slug }}",
    }
}
# Sessions are read from Redis and kept in the database too, so a Redis restart
# does not log everybody out.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
{%- else %}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    }
}
# Sessions live in the database, so every process and instance sees them.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
{%- endif %}

# --- Passwords ------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation -------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="{{ cookiecutter.time_zone }}")
try:  # Django checks the name only where time.tzset exists, so not on Windows
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"DJANGO_TIME_ZONE={TIME_ZONE!r} is not an IANA time zone name such as Europe/Berlin "
        "(Windows names like 'W. Europe Standard Time' are not)"
    ) from None
USE_I18N = True
USE_TZ = True

# --- Static files (served by WhiteNoise) ----------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Unhashed files (favicon.ico, robots.txt) are cached this many seconds.
WHITENOISE_MAX_AGE = env.int("WHITENOISE_MAX_AGE", default=60)

# --- Uploaded files (FileField, ImageField) -------------------------------------------
# Written while the site runs, so beside the database in data/ (the service account may write
# there); served at MEDIA_URL by tornado_wsgi_server/media_files.py (urls.py), and included in
# manage.py backup and restore.

MEDIA_URL = "media/"
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "data" / "media")

# --- Security -------------------------------------------------------------------------
# Plain HTTP works out of the box (an intranet, http://127.0.0.1:8000/). Set
# DJANGO_HTTPS=true once the site is reached over HTTPS, directly (--certfile) or
# through a TLS-terminating proxy: cookies become HTTPS-only, HTTP is redirected and
# browsers are told to use HTTPS (HSTS).

HTTPS = env.bool("DJANGO_HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# Behind a proxy that already redirects HTTP to HTTPS, this may be turned off.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
# Start small; raise to 31536000 (one year) once HTTPS works everywhere.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Django's two weeks by default; an operations portal may want a working day (28800).
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=14 * 24 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE", default=False)
# The server sets wsgi.url_scheme from X-Forwarded-Proto and the host from X-Forwarded-Host
# only for trusted proxies (SERVER_TRUSTED_PROXIES) and removes them from everyone else, so
# Django needs no SECURE_PROXY_SSL_HEADER or USE_X_FORWARDED_HOST (leave them off).

# --- Windows sign-on (docs/windows-signon.md) ------------------------------------------
# The server signs people on with Kerberos/NTLM (SERVER_WINDOWS_AUTH), or believes the user
# IIS names (SERVER_WINDOWS_AUTH_HEADER), and passes it as REMOTE_USER; Django then signs that
# user in, creating it on first sign-on. In "paths" mode the session keeps the user after
# /accounts/windows/ (PersistentRemoteUserMiddleware); password sign-in keeps working.

WINDOWS_AUTH = env.str("SERVER_WINDOWS_AUTH", default="off").strip().lower()
WINDOWS_AUTH_HEADER = env.str("SERVER_WINDOWS_AUTH_HEADER", default="").strip()
# For the check that warns of strip-domain (users of every domain share one name space).
WINDOWS_AUTH_USER_FORMAT = env.str("SERVER_WINDOWS_AUTH_USER_FORMAT", default="as-is").strip().lower()

# Windows groups -> Django groups and admin rights, brought in line at each sign-on from the
# groups the server's own sign-on reports (not IIS's header). An entry is a SID
# (S-1-5-21-...-1013, stable across renames), DOMAIN\Name, or a bare Name (any domain);
# case does not matter. Django groups not named here are left alone.
# "CORP\Site Editors=Editors, CORP\Site Admins=Admins": Windows group = Django group.
WINDOWS_GROUPS = windows_group_map("DJANGO_WINDOWS_GROUPS", env.str("DJANGO_WINDOWS_GROUPS", default=""))
# Set: is_staff follows these groups (or a superuser group). Empty: is_staff is left alone.
WINDOWS_STAFF_GROUPS = windows_group_list(
    "DJANGO_WINDOWS_STAFF_GROUPS", env.str("DJANGO_WINDOWS_STAFF_GROUPS", default=""))
# Set: is_superuser follows these groups (and makes staff). Empty: is_superuser is left alone.
WINDOWS_SUPERUSER_GROUPS = windows_group_list(
    "DJANGO_WINDOWS_SUPERUSER_GROUPS", env.str("DJANGO_WINDOWS_SUPERUSER_GROUPS", default=""))

if WINDOWS_AUTH != "off" or WINDOWS_AUTH_HEADER:
    REMOTE_USER_MIDDLEWARE = ("django.contrib.auth.middleware.PersistentRemoteUserMiddleware"
                              if WINDOWS_AUTH == "paths" else "django.contrib.auth.middleware.RemoteUserMiddleware")
    MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
                      REMOTE_USER_MIDDLEWARE)
    if WINDOWS_GROUPS or WINDOWS_STAFF_GROUPS or WINDOWS_SUPERUSER_GROUPS:
        MIDDLEWARE.insert(MIDDLEWARE.index(REMOTE_USER_MIDDLEWARE) + 1, WINDOWS_GROUPS_MIDDLEWARE)
    AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.RemoteUserBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]

# --- E-mail and error reports ---------------------------------------------------------
# DJANGO_ADMINS get an e-mail with the traceback of every server error (500), once
# EMAIL_URL names a mail server: smtp+tls://user:password@smtp.example.com:587
# (URL-encode special characters of the password, e.g. @ as %40).

ADMINS = [
    (name or address, address)
    for name, address in getaddresses([env.str("DJANGO_ADMINS", default={{ cookiecutter.email | jsonify }})])
    if address
]
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(environ.Env.email_url_config(EMAIL_URL))
else:
    # No mail server yet: each message (a password reset...) is written to a file in
    # logs/mail/ and named in the log, instead of going to a console the service discards.
    EMAIL_BACKEND = "{{ cookiecutter.project_slug }}.mail.UnsentMailBackend"
    EMAIL_FILE_PATH = env.path("DJANGO_EMAIL_FILE_PATH", default=BASE_DIR / "logs" / "mail")
# Seconds; a mail server that stops answering must not hold the thread (or, for an error
# report while the event loop served a static file, the loop) that sends an error mail.
EMAIL_TIMEOUT = 10
SERVER_EMAIL = env.str("DJANGO_SERVER_EMAIL", default="{{ cookiecutter.project_slug }}@localhost")
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default=SERVER_EMAIL)
EMAIL_SUBJECT_PREFIX = f"[{PROJECT_NAME}] "

# --- Logging --------------------------------------------------------------------------
# Everything goes to the console; the server adds a rotating file (SERVER_LOG_FILE, set in
# .env by default). A request with a Host not in DJANGO_ALLOWED_HOSTS (scanners, someone
# typing the IP address) is one WARNING line at most once a minute, not an ERROR with a
# traceback each time; the access log still shows every such 400.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(name)s] %(message)s"},
    },
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "disallowed_host": {"()": "{{ cookiecutter.project_slug }}.log_filters.DisallowedHostSummary",
                            "interval": 60},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "mail_admins": {"class": "django.utils.log.AdminEmailHandler", "level": "ERROR",
                        "filters": ["require_debug_false"]},
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own console handler would print each error twice; errors are mailed to
        # DJANGO_ADMINS only once EMAIL_URL is set.
        "django": {"handlers": ["mail_admins"] if EMAIL_URL else [], "level": "INFO",
                   "propagate": True},
        "django.security.DisallowedHost": {"filters": ["disallowed_host"], "propagate": True},
    },
}
