"""The pattern and checksum detectors (apps/privacy/detect.py): check digits, formats, context, overlaps and
bounded time on adversarial input. Pure functions: no server, no database."""

import time

import pytest

from apps.privacy.detect import (
    Entity,
    find,
    inn_valid,
    luhn_valid,
    oms_facet_ok,
    oms_valid,
    resolve,
    snils_valid,
)


def kinds(text: str) -> list[tuple[str, str]]:
    return [(e.kind, text[e.start:e.end]) for e in find(text)]


# --- check digits -----------------------------------------------------------------------------------

def test_inn_check_digits():
    assert inn_valid("7707083893")  # Sberbank's
    assert inn_valid("500100732259")
    assert not inn_valid("7707083894")
    assert not inn_valid("500100732258")
    assert not inn_valid("500100732249")  # the first of the two check digits wrong
    assert not inn_valid("77070838")


def test_snils_check_digits():
    assert snils_valid("11223344595")
    assert not snils_valid("11223344596")
    assert snils_valid("08989723260")  # a check number of 00 (sum mod 101 = 100)
    assert not snils_valid("00100199800")  # no check number is defined up to 001-001-998


def test_luhn():
    assert luhn_valid("4276380012345679")
    assert not luhn_valid("4276380012345678")
    assert luhn_valid("2200123456789012341")  # 19 digits


def test_oms_check_digit_and_birth_date_facet():
    enp = "7756410842123459"  # region 77, a man born 7 March 1985, serial 12345
    assert oms_valid(enp) and oms_facet_ok(enp)
    assert not oms_valid("7756410842123458")
    # Doubling a number and summing its digits is Luhn's sum: every policy passes Luhn too.
    assert luhn_valid(enp)
    assert not oms_facet_ok("4276380012345679")  # a card's digits hold no plausible birth date


# --- formats ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("phone", [
    "+7 916 234-56-78", "+7(985)765-43-21", "8 (495) 123-45-67", "89031234567", "+79261112233",
    "8-800-555-35-35", "+7 903 555 12 34", "8 (4912) 25-44-10", "+ 7 (812) 600-11-22", "7 912 345 67 89",
])
def test_it_finds_phones_in_their_usual_formats(phone):
    assert kinds(f"Мой номер {phone}, звоните.") == [("phone", phone)]


def test_a_phone_split_by_a_line_break_after_the_plus_is_whole():
    text = "Звонил с +\n7-861-620-89-23 вчера"
    assert kinds(text) == [("phone", "+\n7-861-620-89-23")]


@pytest.mark.parametrize("text, found", [
    ("паспорт 4516 252713", "4516 252713"),
    ("паспорт 45 16 252713", "45 16 252713"),
    ("серия 4516 № 252713", "4516 № 252713"),
    ("паспорт серия 5723 номер 273933, выдан", "5723 номер 273933"),
    ("Прикладываю паспорт 0714377209", "0714377209"),
    ("Данные: 6609638135, код подразделения 770-001", "6609638135"),
])
def test_it_finds_passports(text, found):
    assert kinds(text) == [("passport", found)]


@pytest.mark.parametrize("snils", ["112-233-445 95", "112-233-445-95", "112 233 445 95", "11223344595"])
def test_it_finds_snils_without_context(snils):
    assert kinds(f"Проверьте {snils}, пожалуйста.") == [("snils", snils)]


@pytest.mark.parametrize("card", ["4276 3800 1234 5679", "4276-3800-1234-5679", "4276380012345679",
                                  "2200 1234 5678 9012 341", "4276  3800  1234  5679"])
def test_it_finds_cards(card):
    assert kinds(f"Переведите на {card}") == [("card", card)]


def test_a_card_number_wrapped_at_a_space_is_one_card():
    assert kinds("карта 4276 3800\n1234 5679 заблокирована") == [("card", "4276 3800\n1234 5679")]


def test_inn_of_organisation_and_person():
    assert kinds("ИНН 7707083893, ИНН 500100732259") == [("inn", "7707083893"), ("inn", "500100732259")]


def test_policy_and_card_are_told_apart():
    enp = "7756410842123459"
    assert kinds(f"Полис ОМС {enp}") == [("oms", enp)]
    assert kinds(f"Запишите к врачу, {enp}.") == [("oms", enp)]  # the birth-date facet
    assert kinds(f"{enp} — это мой полис") == [("oms", enp)]
    assert kinds("Оплата с 4276 3800 1234 5679 не проходит") == [("card", "4276 3800 1234 5679")]
    # The nearest word counts: "ЕНП" names the first number, "карта" the second.
    text = f"ЕНП {enp}, карта 4276380012345679"
    assert kinds(text) == [("oms", enp), ("card", "4276380012345679")]


@pytest.mark.parametrize("plate", ["А123ВС77", "а123вс77", "A123BC77", "А 123 ВС 777", "Е027ВТ797",
                                   "м631ск716", "B 123 XA 99", "С988РК 174", "O038KE96 rus", "Т282РЕ178RUS"])
def test_it_finds_plates_in_cyrillic_latin_and_lower_case(plate):
    assert kinds(f"Машина {plate} стоит во дворе") == [("plate", plate)]


@pytest.mark.parametrize("email", ["irina.sokolova@mail.ru", "Kuznetsov.Oleg@gmail.com", "a+b@corp.example.com",
                                   "ivan@xn--80aswg.xn--p1ai", "IVAN@YA.RU"])
def test_it_finds_emails(email):
    assert kinds(f"Пишите на {email}.") == [("email", email)]


def test_context_words_with_latin_look_alikes_still_name_the_document():
    # "ИHH" with a Latin H: a ten-digit number in passport shape is read as the INN it is named.
    assert kinds("ИHH 7707 083893") == [("inn", "7707 083893")]


# --- look-alikes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "ИНН 7707083894 не проходит проверку",  # wrong check digit, named as an INN
    "СНИЛС 112-233-445 96",
    "Номер карты 4276 3800 1234 5678 введён с ошибкой?",
    "Полис 7756410842123458 недействителен",
    "Заказ № 79161234567 передан в доставку",  # phone-shaped, named as an order
    "Номер заказа: 4276380012345679",  # Luhn-valid, named as an order
    "Номер накладной 7707083893",
    "Курс доллара на 12.03.2024 составил 91,45 рубля",
    "Итого к оплате: 1 234 567 890 руб.",
    "Код подтверждения 123456",
    "Трек-номер RA123456789RU",
    "ОГРН 1027700132195, КПП 773601001",
])
def test_look_alikes_are_not_personal(text):
    assert find(text) == []


# --- overlaps and order -----------------------------------------------------------------------------

def test_entities_are_sorted_and_do_not_overlap():
    text = ("Иван, тел. +7 916 234-56-78, почта ivan1984@mail.ru, СНИЛС 112-233-445 95, карта 4276 3800 1234 5679, "
            "машина А123ВС77, ИНН 7707083893.")
    found = find(text)
    assert [e.kind for e in found] == ["phone", "email", "snils", "card", "plate", "inn"]
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))


def test_digits_inside_an_email_stay_in_the_email():
    assert kinds("пишите 79161234567@mail.ru") == [("email", "79161234567@mail.ru")]


def test_resolve_keeps_the_longer_of_overlapping_entities():
    ents = [Entity("person", 0, 5), Entity("organisation", 3, 12), Entity("address", 12, 15), Entity("phone", 14, 20)]
    assert resolve(ents) == [Entity("organisation", 3, 12), Entity("phone", 14, 20)]


def test_empty_and_plain_text():
    assert find("") == []
    assert find("Добрый день, подскажите расписание на завтра.") == []


# --- bounded time -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "a" * 999_999 + "@",  # the e-mail pattern's local part
    "a." * 500_000,
    "А 123 ВС " * 110_000,  # the plate pattern, never completed
    "45 12 номер " * 90_000,
    "+7 (" * 250_000,
    "1234 " * 200_000,  # one chain of 200,000 groups
    "12\n" * 333_333,
], ids=["email-run", "dots", "plates", "passport-words", "phone-prefixes", "digit-groups", "digit-lines"])
def test_a_megabyte_of_adversarial_text_takes_time_in_proportion(text):
    started = time.process_time()
    find(text)
    # Linear scans take 0.1–3 s of CPU here; a catastrophic pattern would take hours. Generous for CI.
    assert time.process_time() - started < 15
