"""Celery tasks of the reference application."""

from __future__ import annotations

import logging
import socket

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from bmms_reference.core.models import TaskRun, User

logger = logging.getLogger(__name__)


@shared_task
def send_welcome_email(user_id: int) -> None:
    """Send one welcome message to a newly imported user."""
    # The primary, because a replica may not have the new row yet.
    user = User.objects.using("default").select_related("moa").get(pk=user_id)
    send_mail(
        subject="Welcome to BMMS",
        message=(
            f"Hello {user.get_full_name() or user.username},\n\n"
            f"An account for {user.moa.name if user.moa else 'BMMS'} was created for you.\n"
            f"Sign in at {settings.BASE_URL} with the user name {user.username}.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
    logger.info("sent the welcome email to user %s", user.pk)


@shared_task
def heartbeat() -> None:
    """Record one run of the periodic task that celery beat schedules."""
    TaskRun.objects.create(name="heartbeat", worker=socket.gethostname())


@shared_task
def record_probe(key: str) -> None:
    """Record that a queued probe task ran; failover tests count these."""
    TaskRun.objects.create(name="probe", key=key, worker=socket.gethostname())
