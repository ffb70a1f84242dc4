from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


def _keys_changed(**kwargs):
    from apps.common import bus

    transaction.on_commit(lambda: bus.publish("keys"))


class KeysConfig(AppConfig):
    name = "apps.keys"
    label = "keys"

    def ready(self):
        from .models import ApiKey

        post_save.connect(_keys_changed, sender=ApiKey, dispatch_uid="keys-save")
        post_delete.connect(_keys_changed, sender=ApiKey, dispatch_uid="keys-delete")
