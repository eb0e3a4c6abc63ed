from django.contrib import admin
from django.urls import path

from bmms_reference import views

urlpatterns = [
    path("", views.index, name="index"),
    path("version/", views.version, name="version"),
    path("moas/", views.moa_list, name="moa-list"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
