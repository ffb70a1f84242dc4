"""The emulators' deterministic model answers a JSON schema with a value that satisfies it
(apps/emulators/behaviour.py `synthesize`), pydantic's nested models ($defs and $ref) included."""

import time

from pydantic import BaseModel

from apps.emulators.behaviour import SYNTHESIZED_NODES, synthesize


class Street(BaseModel):
    name: str
    number: int


class Address(BaseModel):
    street: Street
    postcode: str | None = None


class Person(BaseModel):
    name: str
    home: Address
    previous: list[Address] = []


def test_it_follows_refs_into_defs():
    value = synthesize(Person.model_json_schema())

    assert value == {"name": "Moscow", "home": {"street": {"name": "Moscow", "number": 3}, "postcode": "Moscow"},
                     "previous": []}
    assert Person.model_validate(value).home.street.number == 3


def test_it_follows_the_older_definitions_spelling():
    schema = {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}, "required": ["a"],
              "definitions": {"A": {"type": "object", "properties": {"n": {"type": "integer"}}}}}
    assert synthesize(schema) == {"a": {"n": 3}}


def test_a_recursive_ref_ends_at_the_depth_bound():
    schema = {"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
              "$ref": "#/$defs/Node"}
    value = synthesize(schema)
    depth = 0
    while isinstance(value, dict) and value:
        value, depth = value["next"], depth + 1
    assert 0 < depth <= 8


def test_a_small_schema_of_many_self_references_is_filled_within_a_budget():
    many = {"type": "object", "properties": {f"p{i}": {"$ref": "#/$defs/A"} for i in range(60)}}
    started = time.monotonic()
    value = synthesize({"$defs": {"A": many}, **many})
    assert time.monotonic() - started < 2  # 60 ** 8 values otherwise
    assert "p0" in value and _count(value) <= SYNTHESIZED_NODES + 10  # one value past it per level


def _count(value) -> int:
    return 1 + sum(_count(v) for v in value.values()) if isinstance(value, dict) else 1
