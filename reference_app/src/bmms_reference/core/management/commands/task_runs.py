"""Print recorded task runs as JSON, for tests and operators."""

import json
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from bmms_reference.core.models import TaskRun


class Command(BaseCommand):
    help = "Print the runs of one task recorded in the last SECONDS seconds as a JSON list."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=["heartbeat", "probe"], help="task whose runs to print")
        parser.add_argument("--key-prefix", default=None, help="only runs whose key starts with this text")
        parser.add_argument("--seconds", type=float, default=3600.0, help="how far back to look")

    def handle(self, *args, **options):
        since = timezone.now() - timedelta(seconds=options["seconds"])
        runs = TaskRun.objects.using("default").filter(name=options["name"], created_at__gte=since)
        if options["key_prefix"] is not None:
            runs = runs.filter(key__startswith=options["key_prefix"])
        rows = [
            {"worker": run.worker, "key": run.key, "at": run.created_at.timestamp()}
            for run in runs.order_by("created_at")
        ]
        self.stdout.write(json.dumps(rows))
