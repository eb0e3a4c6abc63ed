"""Send reads to the read-only alias and everything else to the primary."""

READONLY_ALIAS = "readonly"


class ReadReplicaRouter:
    """Route reads to the replicas, writes and migrations to the primary.

    Replicas lag behind the primary, so code that must read its own writes
    (a task that loads the row it was queued for) uses ``.using("default")``.
    """

    def db_for_read(self, model, **hints):
        return READONLY_ALIAS

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        # Both aliases reach the same database, so relations are always valid.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
