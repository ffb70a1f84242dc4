"""Re-encrypt every encrypted field (EncryptedJSONField) with the first of XROUTER_FERNET_KEYS.

Rotation without downtime: (1) put the new key first, the old ones after it, in every process's
XROUTER_FERNET_KEYS (new writes use the new key, every key still decrypts); (2) run this command; (3) once it
reports nothing left under an old key, drop the old keys. Rows are rewritten one at a time, each only if it
still holds the token that was read (an edit made meanwhile is newer and already under the new key).
"""

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import TextField, Value
from django.db.models.functions import Cast

from apps.common.crypto import EncryptedJSONField, fernet

BATCH = 500


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first XROUTER_FERNET_KEYS key (run after adding a new key first)."

    def handle(self, *args, **options):
        primary = Fernet(settings.FERNET_KEYS[0])
        rotated = current = lost = 0
        for model in apps.get_models():
            for field in model._meta.concrete_fields:
                if not isinstance(field, EncryptedJSONField):
                    continue
                counts = self._rotate(model, field.name, primary)
                rotated, current, lost = rotated + counts[0], current + counts[1], lost + counts[2]
                if any(counts):
                    self.stdout.write(f"{model._meta.label}.{field.name}: {counts[0]} re-encrypted, "
                                      f"{counts[1]} already under the first key, {counts[2]} undecryptable")
        self.stdout.write(f"{rotated} re-encrypted, {current} already current, {lost} undecryptable.")
        if lost:
            raise CommandError(f"{lost} value(s) no configured key decrypts: keep the old keys until they are "
                               "re-entered (the admin shows which).")

    def _rotate(self, model, name, primary) -> tuple[int, int, int]:
        rotated = current = lost = 0
        # The stored token itself (Cast to text skips the field's decryption), a batch of primary keys at a time.
        rows = (model._default_manager.annotate(token=Cast(name, TextField())).exclude(token="")  # nosec B106 # an empty-string filter, not a password
                .order_by("pk").values_list("pk", "token"))
        last = None
        while True:
            batch = list((rows.filter(pk__gt=last) if last is not None else rows)[:BATCH])
            if not batch:
                return rotated, current, lost
            last = batch[-1][0]
            for pk, token in batch:
                try:
                    primary.decrypt(token.encode())
                    current += 1
                    continue
                except InvalidToken:
                    pass  # not under the first key yet: rotated below
                try:
                    new = fernet().rotate(token.encode()).decode()
                except InvalidToken:
                    lost += 1
                    continue
                rotated += (model._default_manager.annotate(token=Cast(name, TextField()))
                            .filter(pk=pk, token=token).update(**{name: Value(new, output_field=TextField())}))
