from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


def _config_changed(**kwargs):
    from apps.common import bus

    transaction.on_commit(lambda: bus.publish("config"))


class RoutingConfig(AppConfig):
    name = "apps.routing"
    label = "routing"

    def ready(self):
        # Any edit of routing configuration, from the admin, the API or import_config, reaches
        # every gateway process through the bus (README, "Configuration changes").
        from apps.providers.models import Credential, Provider, ProviderModel

        from .models import Alias, RoutingRule

        for model in (Provider, Credential, ProviderModel, Alias, RoutingRule):
            post_save.connect(_config_changed, sender=model, dispatch_uid=f"config-{model.__name__}-save")
            post_delete.connect(_config_changed, sender=model, dispatch_uid=f"config-{model.__name__}-delete")
