"""Queue Celery tasks so that a Redis failover delays them instead of failing them.

During a failover the local endpoint has no master for a few seconds, and
the new master refuses writes (NOREPLICAS, or READONLY on a demoted one)
until a replica reconnects. Celery retries only connection errors, so
this retries those refusals too, for up to RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import time

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

RETRY_SECONDS = 30.0
RETRY_INTERVAL = 0.5
# Replies of a Redis master that cannot take writes yet.
TRANSIENT_REPLIES = ("NOREPLICAS", "READONLY", "MASTERDOWN", "LOADING")

logger = logging.getLogger(__name__)


def is_transient(error: Exception) -> bool:
    """Tell whether the broker may accept the same message a moment later."""
    if isinstance(error, (OperationalError, RedisConnectionError)):
        return True
    # Kombu wraps pipeline replies, so the reply may sit inside the message.
    return isinstance(error, ResponseError) and any(reply in str(error) for reply in TRANSIENT_REPLIES)


def delay_with_retry(task, *args, **kwargs):
    """Queue task(*args, **kwargs); retry transient broker errors for up to RETRY_SECONDS."""
    deadline = time.monotonic() + RETRY_SECONDS
    attempt = 1
    while True:
        try:
            return task.delay(*args, **kwargs)
        except (OperationalError, RedisConnectionError, ResponseError) as error:
            if not is_transient(error) or time.monotonic() >= deadline:
                raise
            logger.warning("queueing %s failed (attempt %d), retrying: %s", task.name, attempt, error)
            attempt += 1
            time.sleep(RETRY_INTERVAL)
