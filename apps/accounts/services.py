"""Writes on users and organisations that change who may call the gateway."""

from django.db import transaction

from apps.common import bus

from .models import Organisation, User

# The key caches of every process listen on this topic (apps.keys.selectors).
KEYS_TOPIC = "keys"


def user_set_active(user: User, is_active: bool) -> None:
    """(De)activate a user; every gateway process refuses (or accepts again) their keys within a second."""
    user.is_active = is_active
    user.save(update_fields=["is_active"])
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": user.id}))


def organisation_set_active(organisation: Organisation, is_active: bool) -> None:
    """(De)activate an organisation: the keys of the organisation and of its members, everywhere."""
    organisation.is_active = is_active
    organisation.save(update_fields=["is_active"])
    transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation.id}))


def user_delete(user: User) -> None:
    """Delete a user (their keys go by cascade) and drop their keys from every process's key cache."""
    user_id = user.id
    with transaction.atomic():
        user.delete()
        transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"user_id": user_id}))


def organisation_delete(organisation: Organisation) -> None:
    """Delete an organisation and tell every key cache. ProtectedError while it has keys (ApiKey.organisation):
    deactivate it instead (a deleted tenant's keys must not live on as keys of no tenant)."""
    organisation_id = organisation.id
    with transaction.atomic():
        organisation.delete()
        transaction.on_commit(lambda: bus.publish(KEYS_TOPIC, {"organisation_id": organisation_id}))
