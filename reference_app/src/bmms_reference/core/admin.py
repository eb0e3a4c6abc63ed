from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from bmms_reference.core.models import Moa, User

admin.site.register(Moa)
admin.site.register(User, UserAdmin)
