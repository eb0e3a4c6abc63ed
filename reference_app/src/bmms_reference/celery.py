"""Celery application; its configuration is the Django settings named CELERY_*."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bmms_reference.settings")

app = Celery("bmms_reference")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
