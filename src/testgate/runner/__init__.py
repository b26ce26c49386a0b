"""Executors: the local subprocess runner (default) and, for scale-out, Celery workers."""
