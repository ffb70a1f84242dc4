"""``python manage.py run_emulators``: serve the four provider emulators until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import ssl

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.emulators.server import EMULATORS, start_emulators, stop_emulators


class Command(BaseCommand):
    help = "Serve the GigaChat, YandexGPT, MTS and T-Bank emulators on loopback ports."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="default: settings.EMULATOR_HOST")
        for name in EMULATORS:
            parser.add_argument(
                f"--{name}-port", type=int, default=None, help=f"default: settings.EMULATOR_PORTS['{name}']; 0 = any free port"
            )
        parser.add_argument("--only", nargs="+", choices=EMULATORS, help="start only these emulators")
        parser.add_argument("--ledger-size", type=int, default=None,
                            help="entries each emulator's ledger keeps (default 10,000; also POST /_emulator/config)")
        parser.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS")
        parser.add_argument("--tls-key", help="PEM private key for --tls-cert")

    def handle(self, *args, **options):
        host = options["host"] or getattr(settings, "EMULATOR_HOST", "127.0.0.1")
        configured = getattr(settings, "EMULATOR_PORTS", {})
        names = options["only"] or EMULATORS
        ports = {}
        for name in names:
            port = options[f"{name}_port"]
            ports[name] = port if port is not None else configured.get(name, 0)
        extra = {name: {"ledger_size": options["ledger_size"]} for name in names} if options["ledger_size"] else None
        asyncio.run(self._serve(host, ports, self._ssl_context(options), extra))

    def _ssl_context(self, options) -> ssl.SSLContext | None:
        if not options["tls_cert"]:
            if options["tls_key"]:
                raise CommandError("--tls-key needs --tls-cert")
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options["tls_cert"], options["tls_key"])
        return context

    async def _serve(self, host: str, ports: dict, ssl_context, options=None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            running = await start_emulators(host, ports, ssl_context, options)
        except ValueError as exc:  # a --ledger-size out of range
            raise CommandError(str(exc)) from None
        try:
            for emulator in running.values():
                extra = f"  auth_url={emulator.auth_url}" if emulator.auth_url else ""
                self.stdout.write(f"{emulator.name:<10} base_url={emulator.base_url}{extra}")
            self.stdout.write("Control API: <origin>/_emulator/{health,ledger,faults,config,reset}. Ctrl-C to stop.")
            await stop.wait()
        finally:
            await stop_emulators(running)
            self.stdout.write("Emulators stopped.")
