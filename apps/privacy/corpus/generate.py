"""The generated corpus: seeded and deterministic, `generate(n, seed)`.

Every template holds exactly its labelled entities (no unlabelled names). Formats follow how people type
these things (spaces, dashes, brackets, line breaks, lower case, declined names, initials, Latin letters
that look Cyrillic in plates and in the words naming a document), chosen at random and independently of
the detectors; no code from apps/privacy/detect.py is used. Look-alike negatives (identifiers with a wrong check digit, order and invoice numbers, dates, amounts) carry no label.
"""

import random

from apps.privacy.corpus import ids
from apps.privacy.corpus.items import Item

# --- people -----------------------------------------------------------------------------------------
# Each name in its cases: nominative, genitive, dative, accusative, instrumental, prepositional.
MEN = [
    ("Иван", "Ивана", "Ивану", "Ивана", "Иваном", "Иване"),
    ("Алексей", "Алексея", "Алексею", "Алексея", "Алексеем", "Алексее"),
    ("Дмитрий", "Дмитрия", "Дмитрию", "Дмитрия", "Дмитрием", "Дмитрии"),
    ("Сергей", "Сергея", "Сергею", "Сергея", "Сергеем", "Сергее"),
    ("Андрей", "Андрея", "Андрею", "Андрея", "Андреем", "Андрее"),
    ("Михаил", "Михаила", "Михаилу", "Михаила", "Михаилом", "Михаиле"),
    ("Никита", "Никиты", "Никите", "Никиту", "Никитой", "Никите"),
    ("Павел", "Павла", "Павлу", "Павла", "Павлом", "Павле"),
    ("Артём", "Артёма", "Артёму", "Артёма", "Артёмом", "Артёме"),
    ("Роман", "Романа", "Роману", "Романа", "Романом", "Романе"),
    ("Олег", "Олега", "Олегу", "Олега", "Олегом", "Олеге"),
    ("Владимир", "Владимира", "Владимиру", "Владимира", "Владимиром", "Владимире"),
    ("Евгений", "Евгения", "Евгению", "Евгения", "Евгением", "Евгении"),
    ("Константин", "Константина", "Константину", "Константина", "Константином", "Константине"),
    ("Григорий", "Григория", "Григорию", "Григория", "Григорием", "Григории"),
    ("Тимур", "Тимура", "Тимуру", "Тимура", "Тимуром", "Тимуре"),
]
WOMEN = [
    ("Анна", "Анны", "Анне", "Анну", "Анной", "Анне"),
    ("Мария", "Марии", "Марии", "Марию", "Марией", "Марии"),
    ("Елена", "Елены", "Елене", "Елену", "Еленой", "Елене"),
    ("Ольга", "Ольги", "Ольге", "Ольгу", "Ольгой", "Ольге"),
    ("Наталья", "Натальи", "Наталье", "Наталью", "Натальей", "Наталье"),
    ("Татьяна", "Татьяны", "Татьяне", "Татьяну", "Татьяной", "Татьяне"),
    ("Ирина", "Ирины", "Ирине", "Ирину", "Ириной", "Ирине"),
    ("Светлана", "Светланы", "Светлане", "Светлану", "Светланой", "Светлане"),
    ("Екатерина", "Екатерины", "Екатерине", "Екатерину", "Екатериной", "Екатерине"),
    ("Юлия", "Юлии", "Юлии", "Юлию", "Юлией", "Юлии"),
    ("Дарья", "Дарьи", "Дарье", "Дарью", "Дарьей", "Дарье"),
    ("Ксения", "Ксении", "Ксении", "Ксению", "Ксенией", "Ксении"),
    ("Валентина", "Валентины", "Валентине", "Валентину", "Валентиной", "Валентине"),
    ("Алина", "Алины", "Алине", "Алину", "Алиной", "Алине"),
]
SURNAME_STEMS = ["Иванов", "Петров", "Смирнов", "Кузнецов", "Соколов", "Попов", "Лебедев", "Козлов",
                 "Новиков", "Морозов", "Волков", "Соловьёв", "Васильев", "Зайцев", "Павлов", "Семёнов",
                 "Голубев", "Виноградов", "Богданов", "Воробьёв", "Фёдоров", "Михайлов", "Беляев",
                 "Тарасов", "Белов", "Комаров", "Орлов", "Киселёв", "Макаров", "Андреев", "Ковалёв",
                 "Ильин", "Гусев", "Титов", "Кузьмин", "Кудрявцев", "Баранов", "Куликов", "Алексеев",
                 "Степанов", "Яковлев", "Сорокин", "Сергеев", "Романов", "Захаров", "Борисов", "Королёв",
                 "Герасимов", "Пономарёв", "Григорьев", "Лазарев", "Медведев", "Ершов", "Никитин",
                 "Соболев", "Рябов", "Поляков", "Цветков", "Данилов", "Жуков", "Фролов", "Журавлёв",
                 "Николаев", "Крылов", "Максимов", "Сидоров", "Осипов", "Белоусов", "Федотов", "Дорофеев",
                 "Егоров", "Матвеев", "Бобров", "Дмитриев", "Калинин", "Анисимов", "Петухов", "Антонов"]
MALE_PATRONYMICS = ["Иванович", "Петрович", "Сергеевич", "Андреевич", "Алексеевич", "Дмитриевич",
                    "Николаевич", "Владимирович", "Михайлович", "Олегович", "Викторович", "Юрьевич"]
# Surname endings per case: (male, female).
_SURNAME_CASES = [("", "а"), ("а", "ой"), ("у", "ой"), ("а", "у"), ("ым", "ой"), ("е", "ой")]
_PATRONYMIC_CASES = [("",), ("а",), ("у",), ("а",), ("ем",), ("е",)]


def _surname(stem: str, female: bool, case: int) -> str:
    male_end, female_end = _SURNAME_CASES[case]
    if stem.endswith("ин") and case == 4 and not female:
        return stem + "ым"
    return stem + (female_end if female else male_end)


def _patronymic(male: str, female: bool, case: int) -> str:
    if not female:
        return male + _PATRONYMIC_CASES[case][0]
    return male[:-2] + "н" + ("а", "ы", "е", "у", "ой", "е")[case]  # Иванович → Ивановна


def person(rng: random.Random, case: int) -> str:
    female = rng.random() < 0.5
    first = rng.choice(WOMEN if female else MEN)
    stem = rng.choice(SURNAME_STEMS)
    sur = _surname(stem, female, case)
    pat = _patronymic(rng.choice(MALE_PATRONYMICS), female, case)
    initials = f"{first[0][0]}. {pat[0]}."
    style = rng.randrange(9)
    if style == 0:
        return f"{first[case]} {sur}"
    if style == 1:
        return f"{sur} {first[case]}"
    if style == 2:
        return f"{sur} {first[case]} {pat}"
    if style == 3:
        return f"{first[case]} {pat} {sur}"
    if style == 4:
        return f"{sur} {initials}"
    if style == 5:
        return f"{sur} {initials.replace(' ', '')}"
    if style == 6:
        return f"{initials} {sur}"
    if style == 7:
        return f"{first[case]} {pat}"
    return f"{first[0][0]}. {sur}"


# --- places and organisations -----------------------------------------------------------------------
CITIES = [("Москва", "Москве"), ("Санкт-Петербург", "Санкт-Петербурге"), ("Казань", "Казани"),
          ("Новосибирск", "Новосибирске"), ("Екатеринбург", "Екатеринбурге"), ("Самара", "Самаре"),
          ("Нижний Новгород", "Нижнем Новгороде"), ("Челябинск", "Челябинске"), ("Омск", "Омске"),
          ("Ростов-на-Дону", "Ростове-на-Дону"), ("Уфа", "Уфе"), ("Красноярск", "Красноярске"),
          ("Пермь", "Перми"), ("Воронеж", "Воронеже"), ("Волгоград", "Волгограде"), ("Тула", "Туле"),
          ("Краснодар", "Краснодаре"), ("Саратов", "Саратове"), ("Тюмень", "Тюмени"), ("Ижевск", "Ижевске"),
          ("Барнаул", "Барнауле"), ("Иркутск", "Иркутске"), ("Ярославль", "Ярославле"), ("Томск", "Томске"),
          ("Калининград", "Калининграде"), ("Владивосток", "Владивостоке"), ("Рязань", "Рязани")]
STREETS = ["Ленина", "Гагарина", "Пушкина", "Советская", "Мира", "Садовая", "Лесная", "Центральная",
           "Молодёжная", "Школьная", "Набережная", "Кирова", "Чехова", "Профсоюзная", "Первомайская",
           "Комсомольская", "Октябрьская", "Маяковского", "Лермонтова", "Гоголя", "Суворова", "Жукова"]
STREET_KINDS = ["ул.", "улица", "пр-т", "проспект", "пер.", "бульвар", "ул"]
ORGS = ["Сбербанк", "ВТБ", "Газпром", "Роснефть", "Лукойл", "Аэрофлот", "Яндекс", "Мегафон", "Ростелеком",
        "Альфа-Банк", "Тинькофф", "РЖД", "Магнит", "Норильский никель", "Северсталь", "Росатом",
        "Почта России", "Сбер", "Райффайзенбанк", "Газпромбанк", "МТС", "Билайн", "Wildberries", "Озон"]
ORG_FORMS = ["ООО", "АО", "ПАО", "ЗАО"]
ORG_WORDS = ["Ромашка", "Вектор", "Альянс", "Прогресс", "Гарант", "Меридиан", "Стройинвест", "Техносфера",
             "Восход", "Феникс", "Энергия", "Импульс", "Горизонт", "Северный ветер", "Лидер", "Интеграл"]


def address(rng: random.Random) -> str:
    city = rng.choice(CITIES)[0]
    street = f"{rng.choice(STREET_KINDS)} {rng.choice(STREETS)}"
    house = rng.choice([f"д. {rng.randrange(1, 200)}", f"дом {rng.randrange(1, 200)}", f"{rng.randrange(1, 200)}",
                        f"д.{rng.randrange(1, 99)}{rng.choice(['', 'а', 'б', '/2'])}"])
    flat = rng.choice(["", f", кв. {rng.randrange(1, 400)}", f", кв.{rng.randrange(1, 400)}",
                       f", корп. {rng.randrange(1, 5)}, кв. {rng.randrange(1, 300)}"])
    city_part = rng.choice([f"г. {city}, ", f"{city}, ", ""])
    return f"{city_part}{street}, {house}{flat}"


def organisation(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(ORGS)
    quote = rng.choice([("«", "»"), ('"', '"')])
    return f"{rng.choice(ORG_FORMS)} {quote[0]}{rng.choice(ORG_WORDS)}{quote[1]}"


# --- identifiers as people type them ----------------------------------------------------------------
_LATIN = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")


def _group(digits: str, sizes: list[int], sep: str) -> str:
    out, pos = [], 0
    for size in sizes:
        out.append(digits[pos:pos + size])
        pos += size
    return sep.join(out)


def _wrap(rng: random.Random, s: str) -> str:
    # A chat window wraps a long number at a space now and then.
    if " " in s and rng.random() < 0.08:
        i = rng.choice([k for k, ch in enumerate(s) if ch == " "])
        return s[:i] + "\n" + s[i + 1:]
    return s


def fmt_phone(rng: random.Random, d: str) -> str:
    pre = rng.choice(["+7", "+7", "8", "8", "7", "+ 7"])
    a, b, c, e = d[:3], d[3:6], d[6:8], d[8:]
    shape = rng.randrange(8)
    if shape == 0:
        s = f"{pre} ({a}) {b}-{c}-{e}"
    elif shape == 1:
        s = f"{pre}({a}){b}-{c}-{e}"
    elif shape == 2:
        s = f"{pre} {a} {b} {c} {e}"
    elif shape == 3:
        s = f"{pre}-{a}-{b}-{c}-{e}"
    elif shape == 4:
        s = f"{pre}{d}".replace(" ", "")
    elif shape == 5:
        s = f"{pre} {a} {b}-{c}-{e}"
    elif shape == 6:
        s = f"{pre} ({a}) {b} {c} {e}"
    else:
        s = f"{pre} {a} {b}{c}{e}"
    return _wrap(rng, s)


def fmt_card(rng: random.Random, d: str) -> str:
    if len(d) == 15:
        return rng.choice([d, _group(d, [4, 6, 5], " ")])
    sizes = [4] * 4 + ([len(d) - 16] if len(d) > 16 else [])
    return _wrap(rng, rng.choice([d, _group(d, sizes, " "), _group(d, sizes, " "), _group(d, sizes, "-"),
                                  _group(d, sizes, "  ")]))


def fmt_snils(rng: random.Random, d: str) -> str:
    return rng.choice([f"{d[:3]}-{d[3:6]}-{d[6:9]} {d[9:]}", f"{d[:3]}-{d[3:6]}-{d[6:9]}-{d[9:]}",
                       f"{d[:3]} {d[3:6]} {d[6:9]} {d[9:]}", d, f"{d[:9]} {d[9:]}"])


def fmt_passport(rng: random.Random, d: str) -> str:
    return rng.choice([f"{d[:2]} {d[2:4]} {d[4:]}", f"{d[:4]} {d[4:]}", f"{d[:4]} № {d[4:]}",
                       f"{d[:2]} {d[2:4]} № {d[4:]}", f"{d[:4]} №{d[4:]}", d, f"{d[:4]} номер {d[4:]}"])


def fmt_oms(rng: random.Random, d: str) -> str:
    return rng.choice([d, d, _group(d, [4] * 4, " ")])


def fmt_plate(rng: random.Random) -> str:
    first, number, pair, region = ids.plate(rng)
    letters = first + pair
    if rng.random() < 0.25:
        letters = letters.translate(_LATIN)
    elif rng.random() < 0.1:  # one Latin letter slipped in
        i = rng.randrange(3)
        letters = letters[:i] + letters[i].translate(_LATIN) + letters[i + 1:]
    a, bc = letters[0], letters[1:]
    s = rng.choice([f"{a}{number}{bc}{region}", f"{a} {number} {bc} {region}", f"{a}{number}{bc} {region}",
                    f"{a} {number} {bc}{region}", f"{a}{number}{bc} {region} RUS", f"{a}{number}{bc}{region}rus"])
    return s.lower() if rng.random() < 0.2 else s


def fmt_email(rng: random.Random) -> str:
    first = rng.choice(["ivan", "anna", "petrov", "m.ivanova", "sergey.k", "olga_s", "dima1990", "kate.smirnova",
                        "info", "a.kuznetsov", "user2024", "n-orlov", "support.team", "zakaz"])
    num = rng.choice(["", "", str(rng.randrange(1, 99)), str(rng.randrange(1960, 2010))])
    domain = rng.choice(["mail.ru", "yandex.ru", "gmail.com", "inbox.ru", "bk.ru", "list.ru", "rambler.ru",
                         "ya.ru", "company.ru", "corp.example.com", "sber.ru", "xn--80aswg.xn--p1ai"])
    s = f"{first}{num}@{domain}"
    return s.upper() if rng.random() < 0.05 else s


# --- sentences --------------------------------------------------------------------------------------
# "{x}" is the entity; "{ctx}" the word naming it, present or not (recall without context is measured).
TEMPLATES = {
    "phone": ["Мой телефон {x}, звоните после шести.", "Перезвоните мне на {x}", "{x} — это мой номер",
              "Контакт для связи: {x}.", "Номер {x}, спросить дежурного.", "Звоните {x} или пишите в чат",
              "тел. {x}", "Оставляю номер {x}, жду звонка.", "вот {x}", "Пишите в мессенджере на {x}.",
              "Курьер звонил с {x}, но я не успела ответить."],
    "card": ["{ctx} {x} заблокирована?", "Переведите на {x}, пожалуйста.", "Списание с {x} прошло дважды.",
             "Вот реквизиты: {x}.", "Прошу перевыпустить {ctx} {x}.", "Оплата с {x} не проходит",
             "{x} — зарплатная, на неё и переводите.", "Номер: {x}"],
    "snils": ["{ctx} {x}", "Мой {ctx}: {x}.", "Укажите {x} в анкете.", "Прикладываю {ctx} {x} для выплат.",
              "{x} — это номер ребёнка.", "Проверьте {x}, пожалуйста.", "Данные: {x}"],
    "inn": ["{ctx} {x}", "Мой {ctx}: {x}.", "Проверьте контрагента {x}.", "Реквизиты получателя: {x}.",
            "Укажите {x} в декларации.", "{x} — это организация мужа.", "Данные для вычета: {x}"],
    "oms": ["{ctx} {x}", "Номер {ctx}: {x}.", "Запишите к врачу, {x}.", "Прикрепите меня, {x}",
            "{x} — полис ребёнка.", "Данные пациента: {x}."],
    "passport": ["{ctx} {x}", "Мой {ctx}: {x}, выдан в 2018 году.", "Данные: {x}, код подразделения 770-001.",
                 "Прикладываю {ctx} {x}.", "{x} — мои данные для договора.", "Серия и номер: {x}"],
    "email": ["Моя почта {x}", "Пишите на {x}.", "Отправьте чек на {x}, спасибо.", "e-mail: {x}",
              "{x} — рабочий адрес.", "Логин {x}, пароль не подходит."],
    "plate": ["Машина {x} стоит во дворе.", "Госномер {x}, штраф пришёл по ошибке.", "Пропустите {x} на парковку.",
              "Авто {x} эвакуировали.", "ДТП с участием {x}.", "Номер машины: {x}"],
    "person": ["Меня зовут {x}.", "Прошу соединить с {x:4}.", "Передайте {x:2} документы.", "Звонила {x}.",
               "Договор подписал {x}.", "Жалоба на сотрудника {x:1}.", "Письмо для {x:1}.", "{x}, добрый день!",
               "Мы встретились с {x:4} вчера.", "Подтверждаю полномочия {x:1}.", "Ответственный — {x}.",
               "Я говорил о {x:5}."],
    "address": ["Адрес доставки: {x}.", "Я живу по адресу {x}.", "Привезите на {x}, это офис.",
                "Прописка: {x}", "Пункт выдачи по адресу {x} закрыт.", "Мой адрес {x}, домофон не работает."],
    "organisation": ["Я работаю в {x}.", "Договор с {x} расторгнут.", "Счёт выставил {x}.",
                     "Звонили из {x}, просили подтвердить.", "{x} задерживает выплату.", "Справка от {x}"],
}
CONTEXT = {"card": ["Карта", "карта", "карту", "Карта №"], "snils": ["СНИЛС", "снилс", "CНИЛС"],
           "inn": ["ИНН", "инн", "ИHH"], "oms": ["Полис ОМС", "полис", "ОМС", "ЕНП"],
           "passport": ["паспорт", "Паспорт", "паспорт серия", "паспорт РФ"]}
# For person sentences the {x:case} slot takes a case; names in other slots are nominative.
_CASED = {"{x:1}": 1, "{x:2}": 2, "{x:4}": 4, "{x:5}": 5}

NEGATIVE_TEMPLATES = [
    "Номер заказа {n}, когда доставка?", "Заказ № {n} не пришёл.", "Трек-номер {n} не отслеживается.",
    "Номер накладной {n}.", "Счёт № {n} от {date}.", "Договор № {n} от {date} расторгнут.",
    "Номер обращения {n}.", "Артикул {n}, размер 42.", "Номер транзакции {n}.", "Лицевой счёт {n}",
    "Дата: {date}, сумма {amount} руб.", "Итого {amount} ₽", "Оплачено {amount} руб. {date}.",
    "Встреча {date} в {time}.", "Курс {amount} на {date}.", "Штрихкод {n}",
]


def _bad_id(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["card", "snils", "inn", "oms"])
    if kind == "card":
        return kind, fmt_card(rng, ids.card(rng, valid=False))
    if kind == "snils":
        return kind, fmt_snils(rng, ids.snils(rng, valid=False))
    if kind == "inn":
        return kind, rng.choice([ids.inn10, ids.inn12])(rng, valid=False)
    return kind, fmt_oms(rng, ids.oms(rng, valid=False))


def _negative(rng: random.Random) -> str:
    if rng.random() < 0.4:  # a look-alike with a wrong check digit, named as what it pretends to be
        kind, x = _bad_id(rng)
        ctx = rng.choice(CONTEXT[kind])
        return rng.choice(["{ctx} {x} не проходит проверку.", "Проверьте {ctx} {x}, кажется, опечатка.",
                           "{x}", "Вот номер: {x}"]).format(ctx=ctx, x=x)
    n = "".join(str(rng.randrange(10)) for _ in range(rng.choice([6, 8, 10, 11, 12, 13, 14, 16])))
    date = f"{rng.randrange(1, 29):02d}.{rng.randrange(1, 13):02d}.{rng.randrange(1990, 2026)}"
    amount = f"{rng.randrange(1, 999)} {rng.randrange(1000):03d}" + rng.choice(["", f",{rng.randrange(100):02d}"])
    time = f"{rng.randrange(8, 21)}:{rng.choice(['00', '15', '30', '45'])}"
    return rng.choice(NEGATIVE_TEMPLATES).format(n=n, date=date, amount=amount, time=time)


def _entity(rng: random.Random, kind: str, case: int = 0) -> str:
    if kind == "phone":
        return fmt_phone(rng, ids.phone(rng))
    if kind == "card":
        return fmt_card(rng, ids.card(rng, length=rng.choice([16, 16, 16, 16, 18, 19])))
    if kind == "snils":
        return fmt_snils(rng, ids.snils(rng))
    if kind == "inn":
        return rng.choice([ids.inn10, ids.inn12])(rng)
    if kind == "oms":
        return fmt_oms(rng, ids.oms(rng))
    if kind == "passport":
        return fmt_passport(rng, ids.passport(rng))
    if kind == "email":
        return fmt_email(rng)
    if kind == "plate":
        return fmt_plate(rng)
    if kind == "person":
        return person(rng, case)
    if kind == "address":
        return address(rng)
    return organisation(rng)


def _sentence(rng: random.Random, kind: str) -> tuple[str, list[tuple[str, int, int]]]:
    ctx = rng.choice(CONTEXT[kind]) if kind in CONTEXT and rng.random() < 0.5 else ""
    template = rng.choice([t for t in TEMPLATES[kind] if ("{ctx}" in t) == bool(ctx)] or TEMPLATES[kind])
    case = 0
    for slot, c in _CASED.items():
        if slot in template:
            template, case = template.replace(slot, "{x}"), c
    x = _entity(rng, kind, case)
    head, _, tail = template.replace("{ctx}", ctx).partition("{x}")
    if head and rng.random() < 0.05:
        head = head.rstrip(" ") + "\n"  # the entity starts a new line
    return head + x + tail, [(kind, len(head), len(head) + len(x))]


def generate(n: int = 3000, seed: int = 20261129) -> list[Item]:
    """`n` items; about a quarter are look-alike negatives, about a sixth are turned to lower case."""
    rng = random.Random(seed)  # nosec B311 # a seeded generator: the test corpus must be reproducible
    kinds = list(TEMPLATES)
    items = []
    for _ in range(n):
        if rng.random() < 0.25:
            text, spans = _negative(rng), []
        else:
            text, spans = "", []
            for kind in rng.sample(kinds, rng.choice([1, 1, 2, 3])):
                sentence, marks = _sentence(rng, kind)
                sep = rng.choice([" ", " ", "  ", "\n"]) if text else ""
                offset = len(text) + len(sep)
                text += sep + sentence
                spans += [(k, s + offset, e + offset) for k, s, e in marks]
        lower = rng.random() < 0.15
        if lower:
            text = text.lower()
        items.append(Item(text, tuple(spans), lower=lower, negative=not spans))
    return items
