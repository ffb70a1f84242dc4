from django.apps import AppConfig


class EmulatorsConfig(AppConfig):
    name = "apps.emulators"
    label = "emulators"
    verbose_name = "Provider emulators"
