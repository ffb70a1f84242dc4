"""The project. Its Celery app (xrouter_project/celery.py) loads only in the processes that run
tasks: `celery -A xrouter_project worker -B` imports it, and its autodiscover_tasks() finds each
app's tasks.py. Importing it here, as Django's Celery guide does, would add ~29 MiB of Celery to
every gateway worker, which never queues a task (beat queues them, workers run them);
`xrouter_project.celery_app` imports it on first use for code that needs it."""


def __getattr__(name):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
