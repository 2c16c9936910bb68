"""The Celery app of a worker host (``celery -A evergreen.celery_app worker``, which
``evergreen worker`` runs): built from the process's settings (``EVERGREEN_PROFILE=cluster``,
``EVERGREEN_REDIS_URL``). Only the worker imports this module."""

from evergreen.settings import get_settings
from evergreen.workers import worker_app

app = worker_app(get_settings())
