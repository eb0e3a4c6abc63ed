"""Reference Django project that stands in for BMMS in the lab.

It is configured only through environment variables, the same ones the
real application reads, so the roles that deploy it deploy BMMS too.
"""

__version__ = "1.0.0"

from .celery import app as celery_app  # noqa: E402  (Celery loads with Django)

__all__ = ["__version__", "celery_app"]
