from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "bmms_reference.core"
    label = "core"
    verbose_name = "BMMS reference"
