"""The name path (apps/privacy/names.py): Natasha's model, loaded lazily. Runs everywhere the requirements
are installed (CI installs them); nothing here is skipped."""

import subprocess
import sys
from pathlib import Path

from apps.privacy.detect import find

ROOT = Path(__file__).resolve().parents[2]


def kinds(text: str) -> list[tuple[str, str]]:
    return [(e.kind, text[e.start:e.end]) for e in find(text, names=True)]


def test_it_finds_persons_places_and_organisations():
    text = "Меня зовут Ирина Соколова, я живу в Казани и работаю в ПАО «Сбербанк»."
    assert kinds(text) == [("person", "Ирина Соколова"), ("address", "Казани"), ("organisation", "ПАО «Сбербанк»")]


def test_declined_names_and_initials_are_persons():
    assert ("person", "Анне Кузнецовой") in kinds("Вчера звонила вашему сотруднику Анне Кузнецовой.")
    assert ("person", "Григорьевой О.В.") in kinds("Справка для Григорьевой О.В. готова.")


def test_a_full_address_is_one_entity_with_its_numbers():
    text = "Я живу по адресу г. Москва, ул. Профсоюзная, д. 43, кв. 118, подъезд 2."
    assert ("address", "г. Москва, ул. Профсоюзная, д. 43, кв. 118") in kinds(text)


def test_a_street_address_is_found_in_lower_case_too():
    assert kinds("привезите на ул. школьная, д. 5, кв. 12 пожалуйста") == [("address", "ул. школьная, д. 5, кв. 12")]


def test_capitalised_words_are_not_taken_for_persons():
    # The tagger reads a sentence-initial verb after a number as a name; the dictionary says it is a verb.
    assert kinds("ИНН 7707083893 Прикрепите меня к поликлинике.") == [("inn", "7707083893")]


def test_identifiers_keep_their_kind_inside_a_tagged_name():
    text = "Полис ОМС 7756410842123459 Курьер приедет завтра"
    assert ("oms", "7756410842123459") in kinds(text)


def test_patterns_alone_load_no_model():
    # names=False must not import the tagger (nor numpy): the gateway pays nothing unless a policy needs names.
    code = ("import sys; from apps.privacy.detect import find; "
            "find('Иван Петров, +7 916 234-56-78, ИНН 7707083893'); "
            "print(sorted(m for m in ('apps.privacy.names', 'numpy', 'slovnet', 'pymorphy2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_lower_case_persons_are_read_from_the_dictionary():
    assert kinds("привет это саша иванов мой номер 89161234567") == [("person", "саша иванов"), ("phone", "89161234567")]
    assert kinds("передайте сидоровой в. с. что всё готово") == [("person", "сидоровой в. с.")]
    assert kinds("карта не работает помогите") == []


def test_a_legal_form_with_a_quoted_name_is_an_organisation_in_any_case():
    assert ("organisation", "ооо «ромашка»") in kinds("счёт выставило ооо «ромашка» вчера")
