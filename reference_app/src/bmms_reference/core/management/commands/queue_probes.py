"""Queue probe tasks whose runs tests count to prove that no task was lost."""

from django.core.management.base import BaseCommand

from bmms_reference.core.queueing import delay_with_retry
from bmms_reference.core.tasks import record_probe


class Command(BaseCommand):
    help = "Queue COUNT record_probe tasks; task N records the key KEY-N when it runs."

    def add_arguments(self, parser):
        parser.add_argument("key", help="label stored with every run, e.g. a test's name")
        parser.add_argument("--count", type=int, default=10, help="number of tasks to queue")

    def handle(self, *args, **options):
        for number in range(options["count"]):
            delay_with_retry(record_probe, f"{options['key']}-{number}")
        self.stdout.write(f"queued {options['count']} probe task(s) with key {options['key']}")
