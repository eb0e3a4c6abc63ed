"""Create a MOA, or rename it, so later imports can refer to its code."""

from django.core.management.base import BaseCommand

from bmms_reference.core.models import Moa


class Command(BaseCommand):
    help = "Create the MOA with this code, or update its name; safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("code", help="short code of the MOA, e.g. mafar")
        parser.add_argument("name", help="full name of the MOA")

    def handle(self, *args, **options):
        moa, created = Moa.objects.using("default").update_or_create(
            code=options["code"], defaults={"name": options["name"]}
        )
        self.stdout.write(f"{'created' if created else 'kept'} MOA {moa.code}")
