"""Effective-dated prices: the ProviderModel's price fields (what the gateway charges and the limiter
reserves) are the price in effect today, VAT included; import_config and the admin write the history."""

import datetime
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.billing import services
from apps.billing.models import ModelPrice
from apps.providers.models import Provider, ProviderModel


@pytest.fixture
def model(db):
    provider = Provider.objects.create(name="pricetest", kind="mts", base_url="http://127.0.0.1:9/v1")
    return ProviderModel.objects.create(provider=provider, name="m", input_price=D("9"), output_price=D("9"))


def _prices(model):
    model.refresh_from_db()
    return model.input_price, model.output_price, model.cached_input_price


def test_price_in_effect_by_date(model):
    ModelPrice.objects.create(model=model, effective_from=datetime.date(2026, 1, 1), input_price=D("1"),
                              output_price=D("2"))
    ModelPrice.objects.create(model=model, effective_from=datetime.date(2026, 12, 1), input_price=D("3"),
                              output_price=D("4"), cached_input_price=D("0.5"))
    assert services.current_prices_apply(datetime.date(2026, 11, 30)) == 1
    assert _prices(model) == (D("1"), D("2"), None)
    assert services.current_prices_apply(datetime.date(2026, 11, 30)) == 0  # nothing changed: no reload
    assert services.current_prices_apply(datetime.date(2026, 12, 1)) == 1  # at midnight, the new price
    assert _prices(model) == (D("3"), D("4"), D("0.5"))


def test_price_without_vat_is_charged_with_the_rate_of_the_day(model):
    ModelPrice.objects.create(model=model, effective_from=datetime.date(2025, 1, 1), input_price=D("1"),
                              output_price=D("0.5"), includes_vat=False)
    services.current_prices_apply(datetime.date(2025, 12, 31))
    assert _prices(model) == (D("1.2"), D("0.6"), None)
    services.current_prices_apply(datetime.date(2026, 1, 1))  # VAT 22% from 2026
    assert _prices(model) == (D("1.22"), D("0.61"), None)


def test_a_model_without_price_rows_keeps_its_fields(model):
    assert services.current_prices_apply() == 0
    assert _prices(model) == (D("9"), D("9"), None)


def test_usage_keeps_the_price_it_was_recorded_with(model):
    """Old usage is never repriced: statements read each row's recorded cost."""
    from apps.usage.pricing import billed_fields

    entry = {"prompt_tokens": 1000, "completion_tokens": 1000, "input_price": "1", "output_price": "2", "ts": 0}
    assert billed_fields(entry)["cost"] == D("3.000000")


def test_import_config_writes_the_history(model, tmp_path):
    config = tmp_path / "prices.yaml"
    config.write_text("""
providers:
  pricetest:
    kind: mts
    base_url: http://127.0.0.1:9/v1
    models:
      m:
        prices:
          - {effective_from: 2025-01-01, input_price: "0.10", output_price: "0.20", includes_vat: false, note: guess}
          - {effective_from: 2099-01-01, input_price: "5", output_price: "5"}
      plain: {input_price: "0.30", output_price: "0.40", price_note: guess}
""")
    call_command("import_config", str(config))
    assert list(model.prices.order_by("effective_from").values_list("input_price", "includes_vat", "note")) == [
        (D("0.10"), False, "guess"), (D("5"), True, "")]
    rate = D("22") if timezone.localdate().year >= 2026 else D("20")
    assert _prices(model)[:2] == (D("0.1") * (100 + rate) / 100, D("0.2") * (100 + rate) / 100)
    plain = ProviderModel.objects.get(provider__name="pricetest", name="plain")
    assert list(plain.prices.values_list("effective_from", "input_price", "note")) == [
        (timezone.localdate(), D("0.30"), "guess")]
    call_command("import_config", str(config))  # idempotent: the plain price is the one in effect already
    assert plain.prices.count() == 1 and model.prices.count() == 2


def test_import_config_refuses_two_prices_of_one_date(model, tmp_path):
    from django.core.management.base import CommandError

    config = tmp_path / "bad.yaml"
    config.write_text("""
providers:
  pricetest:
    kind: mts
    base_url: http://127.0.0.1:9/v1
    models:
      m: {prices: [{effective_from: 2025-01-01, input_price: "1"}, {effective_from: 2025-01-01, input_price: "2"}]}
""")
    with pytest.raises(CommandError, match="same effective_from"):
        call_command("import_config", str(config))
    assert not model.prices.exists()


@pytest.mark.django_db
def test_a_new_price_is_announced_to_every_gateway(model, django_capture_on_commit_callbacks):
    ModelPrice.objects.create(model=model, effective_from=datetime.date(2025, 1, 1), input_price=D("1"),
                              output_price=D("1"))
    with django_capture_on_commit_callbacks() as announced:
        services.current_prices_apply()
    assert len(announced) == 1  # bus "config": each gateway reloads its catalog (no query on the /v1 path)
    with django_capture_on_commit_callbacks() as announced:
        services.current_prices_apply()
    assert announced == []


@pytest.mark.django_db
def test_the_demo_configuration_records_yandex_prices_and_marks_the_rest_as_guesses():
    from django.conf import settings

    call_command("import_config", str(settings.BASE_DIR / "config" / "demo.yaml"))
    yandex = ModelPrice.objects.get(model__provider__name="yandexgpt", model__name="yandexgpt")
    assert (yandex.input_price, yandex.includes_vat) == (D("1.20"), True) and "Yandex" in yandex.note
    others = ModelPrice.objects.exclude(model__provider__name="yandexgpt")
    assert others.exists() and set(others.values_list("note", flat=True)) == {"guess"}
    assert ProviderModel.objects.get(provider__name="yandexgpt", name="yandexgpt-lite").input_price == D("0.20")
