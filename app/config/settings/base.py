"""Settings shared by every environment; deployment values come from the environment only.

production.py adds the checks and hardening a deployment needs; test.py points the suite at its
throwaway services.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from .env import env_float, env_int, env_list, env_str, redis_db_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "access",
    "jobs",
    "health",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # PostgreSQL, Redis or RabbitMQ down: 503 + JSON error, never a 500.
    "config.middleware.DependencyUnavailableMiddleware",
    # Django's, answering 503 when a session cannot be saved.
    "config.sessions.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# PostgreSQL in production (DATABASE_URL: the runtime role, TLS with verify-full); SQLite for
# the tests and local development. Migrations run as the owner role: the deploy passes its URL
# (DATABASE_OWNER_URL) to the migrate command only, never to the running app.
DATABASE_URL = env_str("DATABASE_OWNER_URL") or env_str("DATABASE_URL")
# Seconds PostgreSQL has to answer any round trip (config.db): a server that hangs costs a request
# this long, then a 503. 0 = no deadline, which is what the migrations get (they run as the owner).
DATABASE_QUERY_TIMEOUT = 0.0 if env_str("DATABASE_OWNER_URL") else env_float("DATABASE_QUERY_TIMEOUT", 2.0, minimum=0)
if DATABASE_URL:
    # Persistent connections, checked before reuse: a web thread keeps one (the connection
    # budget counts processes x threads); Celery closes its own around every task.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0), conn_health_checks=True
        ),
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend plus a deadline on every round trip (config/db/base.py), and libpq's
        # own on connecting (2 s is its minimum): PostgreSQL stopped or hanging fails a request
        # (and /readyz) within about 2.5 s, not after the OS timeout or never.
        DATABASES["default"]["ENGINE"] = "config.db"
        _OPTIONS = DATABASES["default"].setdefault("OPTIONS", {})
        _OPTIONS.setdefault("connect_timeout", 2)
        _OPTIONS["query_timeout"] = DATABASE_QUERY_TIMEOUT
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("DJANGO_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        },
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env_str("DJANGO_MEDIA_ROOT", str(BASE_DIR / "media"))
# Uploads are written by the app's user under a umask of 0027 (mod_wsgi's daemon, the Celery
# units) and served by Apache as another user: the modes are set, not left to the umask, or a
# file in a new subdirectory (upload_to="reports/%Y/") would be unreadable to Apache (403).
FILE_UPLOAD_PERMISSIONS = 0o644
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o755

# Redis: one server, three logical databases, every key under a prefix the app's ACL user may
# touch (~cache:* ~session:* ~celery:* ~app:*, channels &celery:*).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379")
REDIS_RESULTS_URL = redis_db_url(REDIS_URL, 0)
REDIS_CACHE_URL = redis_db_url(REDIS_URL, 1)
REDIS_SESSIONS_URL = redis_db_url(REDIS_URL, 2)
# A Redis outage must cost a request a second, not a hung Apache thread: one attempt per command
# (redis-py's clients here do not retry), bounded by these timeouts.
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 1.0, minimum=0.1)

_REDIS_CACHE_OPTIONS = {
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "health_check_interval": 30,
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "cache",
        "OPTIONS": _REDIS_CACHE_OPTIONS,
    },
    "sessions": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_SESSIONS_URL,
        "KEY_PREFIX": "session",
        "OPTIONS": _REDIS_CACHE_OPTIONS,
    },
}
# Sessions live in Redis (persisted there) rather than in the database so that any web node
# serves any user and a web restart logs nobody out.
# Only logged-in users have sessions (nothing anonymous writes to one), and they end after
# SESSION_COOKIE_AGE. config.sessions says "unavailable" (503) when Redis is down instead of
# logging the user out.
SESSION_ENGINE = "config.sessions"
SESSION_CACHE_ALIAS = "sessions"
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_AGE", 12 * 60 * 60, minimum=60)

# Logins: the app's page and the admin's, both throttled (access.throttle).
AUTHENTICATION_BACKENDS = ["access.throttle.ThrottledModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "login"
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1)
LOGIN_MAX_FAILURES_PER_USER = env_int("LOGIN_MAX_FAILURES_PER_USER", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1)
# The admin lives here rather than at /admin/, which every scanner tries first.
ADMIN_PATH = env_str("DJANGO_ADMIN_PATH", "backoffice/").strip("/") + "/"

# The API: users' tokens live hashed in the database (manage.py api_token); the service token
# comes from the inventory, and during a rotation the previous one is accepted as well.
APP_API_TOKEN = env_str("APP_API_TOKEN")
APP_API_TOKEN_PREVIOUS = env_str("APP_API_TOKEN_PREVIOUS")
APP_API_MAX_BODY_BYTES = env_int("APP_API_MAX_BODY_BYTES", 4096, minimum=256)
# Submission limits per caller (access.limits): jobs a minute, and unfinished jobs at once.
APP_SUBMIT_RATE_PER_MINUTE = env_int("APP_SUBMIT_RATE_PER_MINUTE", 30, minimum=1)
APP_MAX_ACTIVE_JOBS = env_int("APP_MAX_ACTIVE_JOBS", 10, minimum=1)
APP_SERVICE_SUBMIT_RATE_PER_MINUTE = env_int("APP_SERVICE_SUBMIT_RATE_PER_MINUTE", 600, minimum=1)
APP_SERVICE_MAX_ACTIVE_JOBS = env_int("APP_SERVICE_MAX_ACTIVE_JOBS", 200, minimum=1)
# How a web request publishes a task (jobs.submit): a confirm waited for this long (a quorum
# queue confirms in milliseconds), then one reconnection (kombu walks the failover list) without
# a pause. With CELERY_BROKER_CONNECTION_TIMEOUT, a broker that is down or hangs costs the
# request about 1.1 s (0.5 + 2 x 0.3), then a 503: well inside the 2 s a client is promised, on a
# busy host too (at 0.5 s per connection the stack measured 1.56 s, too close to the bound).
APP_PUBLISH_CONFIRM_TIMEOUT = env_float("APP_PUBLISH_CONFIRM_TIMEOUT", 0.5, minimum=0.1)
APP_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}

# How often beat sends jobs.heartbeat, and how old its last one may be before /healthz fails.
CELERY_HEARTBEAT_SECONDS = env_int("CELERY_HEARTBEAT_SECONDS", 10, minimum=1)
HEALTH_BEAT_MAX_AGE = env_int("HEALTH_BEAT_MAX_AGE", 3 * CELERY_HEARTBEAT_SECONDS, minimum=1)
HEALTH_WORKER_PING_CACHE_SECONDS = env_int("HEALTH_WORKER_PING_CACHE_SECONDS", 15, minimum=0)
# How long /readyz and /healthz reuse their results (per process): probes cannot hammer the backends.
HEALTH_CACHE_SECONDS = env_float("HEALTH_CACHE_SECONDS", 5.0, minimum=0)
# Who sees the checks' detail (hosts, errors): these networks (load balancers, monitoring) and
# logged-in staff; everyone else gets the bare status.
HEALTH_DETAIL_NETWORKS = env_list("HEALTH_DETAIL_NETWORKS", ["127.0.0.0/8", "::1/128"])
HEALTH_MAX_QUEUE_DEPTH = env_int("HEALTH_MAX_QUEUE_DEPTH", 10000, minimum=1)

# Celery: config/celery.py reads every CELERY_* setting below (namespace "CELERY").

# A ";"-separated list is kombu's failover syntax: kept as one string so kombu parses it.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
# Publisher confirms: apply_async returns only once RabbitMQ has taken responsibility for the
# message (written to a quorum of nodes), so an accepted job is never lost in a broker crash.
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Connecting (TCP and the AMQP handshake) to one node: a node that hangs is given up this fast
# (workers retry for ever; a web request tries twice, see APP_PUBLISH_RETRY_POLICY).
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 0.3, minimum=0.1)

# Celery's Redis backend without the per-task subscription producers make (config/results.py).
CELERY_RESULT_BACKEND = "config.results:ProducerFriendlyRedisBackend+" + REDIS_RESULTS_URL
# Prefixes result keys and the pub/sub channels (a result is published on its key) so the ACL
# can confine the app to celery:*.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": "celery:"}
CELERY_RESULT_EXPIRES = 24 * 60 * 60
# A Redis blip (failover, restart) must not turn finished work into a lost result.
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 10
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 5
CELERY_REDIS_SOCKET_TIMEOUT = 5
CELERY_REDIS_BACKEND_HEALTH_CHECK_INTERVAL = 30

CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"

# Quorum queues are replicated (Raft) and survive the loss of a minority of RabbitMQ nodes.
# Celery decides "quorum" from the queue arguments the client declares, which is what switches
# it to per-consumer QoS and native delayed delivery, so the arguments are explicit even though
# the vhost default is quorum too. Native delayed delivery (countdown/eta/retry backoff) only
# works through a topic exchange: a direct one makes ETA tasks wait inside the worker.
CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
CELERY_WORKER_DETECT_QUORUM_QUEUES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_DEFAULT_EXCHANGE = "tasks"
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
_TASK_EXCHANGE = Exchange("tasks", type="topic")
CELERY_TASK_QUEUES = [
    Queue(name, _TASK_EXCHANGE, routing_key=name, queue_arguments={"x-queue-type": "quorum"})
    for name in ("default", "high", "low", "heartbeat")
]
CELERY_TASK_ROUTES = {
    "jobs.urgent": {"queue": "high"},
    # The liveness signal has a queue of its own: it never waits behind a backlog, and RabbitMQ's
    # policy for it (the rabbitmq role's "liveness") keeps at most one message and has no
    # dead-letter exchange, so heartbeats that expire while the workers are down are dropped
    # instead of filling the dead-letter queue.
    "jobs.heartbeat": {"queue": "heartbeat"},
    "jobs.report": {"queue": "low"},
}

# At-least-once: a task is acknowledged after it ran, and a worker killed mid-task (OOM, deploy,
# lost node) hands it back to the queue. Tasks are therefore written to be idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Once the broker connection is lost the unacknowledged messages are redelivered elsewhere:
# cancelling the running copies avoids doing the work twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Long tasks: a worker reserves one message per process, so a slow task cannot hold others hostage.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 270, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    # The soft limit is the task's chance to clean up before the hard kill: it must come first.
    raise ImproperlyConfigured("CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT")
# A job's row still STARTED or RETRY this long after its last start has no run left that could
# settle it (the hard time limit ended every run): jobs.reconcile, every JOBS_RECONCILE_SECONDS,
# gives it the result backend's outcome or LOST (jobs/reconcile.py).
JOBS_LOST_AFTER_SECONDS = env_int("JOBS_LOST_AFTER_SECONDS", CELERY_TASK_TIME_LIMIT + 60, minimum=1)
if JOBS_LOST_AFTER_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "JOBS_LOST_AFTER_SECONDS must be above CELERY_TASK_TIME_LIMIT: a running job is not lost"
    )
JOBS_RECONCILE_SECONDS = env_int("JOBS_RECONCILE_SECONDS", 60, minimum=1)
# Recycle worker processes before slow leaks become outages.
CELERY_WORKER_MAX_TASKS_PER_CHILD = 1000
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 200_000
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# Remote control (the /healthz ping) and event receivers (worker gossip, flower) use transient
# queues; RabbitMQ 4 deprecates transient non-exclusive queues, so make them exclusive to the
# connection that declared them.
CELERY_CONTROL_QUEUE_EXCLUSIVE = True
CELERY_EVENT_QUEUE_EXCLUSIVE = True

CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "jobs.heartbeat",
        "schedule": float(CELERY_HEARTBEAT_SECONDS),
        # A heartbeat delivered late says nothing about beat now: drop it instead of piling up.
        "options": {"expires": float(CELERY_HEARTBEAT_SECONDS)},
    },
    # No expiry: an expiring message in the default queue would be dead-lettered while the workers
    # are down (the heartbeat's queue drops them instead). The runs that piled up meanwhile are
    # cheap, and the first settles everything.
    "reconcile-jobs": {"task": "jobs.reconcile", "schedule": float(JOBS_RECONCILE_SECONDS)},
}

LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "INFO").upper()
# stderr ends up in journald (workers, beat) or Apache's error log (web): no files to rotate.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(levelname)s %(name)s %(process)d %(message)s"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": LOG_LEVEL, "propagate": False},
        # Errors are logged, never mailed: there is no mail relay in the baseline.
        "django.request": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
ADMINS: list[tuple[str, str]] = []

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Load balancers and monitoring may probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^livez$", r"^readyz$", r"^healthz$"]
# HSTS is Apache's (apache_hsts_*): it sets the header on every response, static files and its
# own errors included; Django setting it too would be a second place to keep in step.
SECURE_HSTS_SECONDS = 0
SILENCED_SYSTEM_CHECKS = ["security.W004"]
