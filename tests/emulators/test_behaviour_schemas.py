"""The emulators' deterministic model answers a JSON schema with a value that satisfies it
(apps/emulators/behaviour.py `synthesize`), pydantic's nested models ($defs and $ref) included."""

from pydantic import BaseModel

from apps.emulators.behaviour import synthesize


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
