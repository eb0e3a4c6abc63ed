"""WSGI entry point for Gunicorn: ``bmms_reference.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bmms_reference.settings")

application = get_wsgi_application()
