"""What a Celery project leans on, spelled as Celery spells it (docs/migrating-from-celery.md)."""
