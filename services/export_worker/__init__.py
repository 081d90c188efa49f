"""The export workers: Celery tasks that render export and report files, and the scheduler."""
