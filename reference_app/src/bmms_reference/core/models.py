from django.contrib.auth.models import AbstractUser
from django.db import models


class Moa(models.Model):
    """A ministry, office or agency: the organization users belong to."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        verbose_name = "MOA"
        verbose_name_plural = "MOAs"

    def __str__(self):
        return self.code


class User(AbstractUser):
    """A BMMS user; staff accounts may have no MOA."""

    moa = models.ForeignKey(Moa, on_delete=models.PROTECT, null=True, blank=True, related_name="members")


class TaskRun(models.Model):
    """One execution of a Celery task, recorded so tests can count runs."""

    name = models.CharField(max_length=64)
    key = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["name", "created_at"])]
