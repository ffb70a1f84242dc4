from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "apps.providers"
    label = "providers"

    def ready(self):
        # Bind @shared_task to XRouter's Celery app in every Django process (the bare server
        # supervisor never imports Django or Celery, to stay small).
        import xrouter_project.celery  # noqa: F401
