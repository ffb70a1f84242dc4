"""JSON schemas (tool parameters, response_format) in the subset GigaChat accepts.

GigaChat answers 422 to `$ref`/`$defs`, `anyOf`/`oneOf`/`allOf`, object nodes without
`properties`, type arrays, `format`s other than date/date-time/time and non-string enums —
all routine in schemas from pydantic v2, LangChain, the OpenAI Agents SDK and MCP servers.
Sources: `langchain-gigachat` `utils/function_calling.py` `gigachat_fix_schema` (single-member
`allOf` inlined, an outer description wins over the referenced one, real unions refused:
"GigaChat currently do not support these typings: Union[X, Y, ...]"), and `gpt2giga`
`common/json_schema.py` (`resolve_schema_refs`, `normalize_json_schema`: refs inlined, null
variants and type-array nulls dropped, empty `properties` added, `items` defaulted to strings,
`_GIGACHAT_ALLOWED_SCHEMA_FORMATS = {date, date-time, time}`).

Decisions where the two differ or are silent:
  * a union of several non-null types (anyOf/oneOf, or a type array) is refused with 400, as
    langchain-gigachat does: gpt2giga's "take the first variant" silently stops the model from
    ever producing the others;
  * several `allOf` members are merged (properties and required united), not refused: that is
    what the conjunction means for the object schemas pydantic and MCP produce;
  * a non-string enum keeps its type and loses the enum, whose values go into the description
    ("One of: 1, 2, 3."): turning them into strings would change the argument types the client
    parses. `const` becomes a one-value enum when it is a string, a description otherwise;
  * a recursive `$ref` cannot be inlined: refused with 400;
  * the work is bounded (MAX_DEPTH levels, MAX_NODES nodes after inlining), so a hostile schema
    cannot blow up the request.

This runs only for requests that carry tools or a response_format (never on the plain-chat path).
"""

from __future__ import annotations

from .base import ProviderError

ALLOWED_FORMATS = frozenset({"date", "date-time", "time"})  # gpt2giga _GIGACHAT_ALLOWED_SCHEMA_FORMATS
MAX_DEPTH = 48
MAX_NODES = 5000
# Keywords with no meaning to GigaChat that would otherwise travel (and may be refused).
DROPPED = frozenset({"$schema", "$id", "$defs", "definitions", "$comment", "not", "if", "then", "else",
                     "patternProperties", "dependentSchemas", "unevaluatedProperties", "prefixItems", "examples"})


class SchemaError(ValueError):
    pass


def gigachat_schema(schema, param: str) -> dict:
    """The schema at `param` in GigaChat's subset; a ProviderError 400 when it cannot be expressed."""
    if not schema:
        return {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise _refused(param, "the schema must be a JSON object")
    defs = {}
    for name in ("definitions", "$defs"):
        if isinstance(schema.get(name), dict):
            defs.update(schema[name])
    walker = _Walker(defs)
    try:
        out = walker.node(schema, 0, (), "object")
    except SchemaError as exc:
        raise _refused(param, str(exc)) from None
    if out.get("type") != "object":
        raise _refused(param, "the top level must be an object schema")
    return out


def _refused(param: str, why: str) -> ProviderError:
    error = ProviderError(f"GigaChat cannot take the JSON schema in '{param}': {why}", status=400, kind="unsupported_parameter")
    error.param = param
    return error


class _Walker:
    def __init__(self, defs: dict):
        self.defs = defs
        self.nodes = 0

    def node(self, schema, depth: int, refs: tuple, default_type: str) -> dict:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SchemaError(f"more than {MAX_NODES} nodes once references are inlined")
        if depth > MAX_DEPTH:
            raise SchemaError(f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(schema, dict):  # `true` / `{}`: anything goes
            schema = {}
        for _ in range(MAX_DEPTH):  # refs to refs, unions of refs, allOf inside a union...
            if "$ref" in schema:
                schema, ref = self._inline(schema, refs)
                refs = (*refs, ref)
            elif isinstance(schema.get("allOf"), list):
                schema = self._merge_all_of(schema, depth, refs)
            elif isinstance(schema.get("anyOf"), list):
                schema = self._collapse(schema, "anyOf")
            elif isinstance(schema.get("oneOf"), list):
                schema = self._collapse(schema, "oneOf")
            else:
                break
        else:
            raise SchemaError(f"references and combinators nested deeper than {MAX_DEPTH} levels")

        out: dict = {}
        for key, value in schema.items():
            if key in DROPPED or key in ("anyOf", "oneOf", "allOf", "$ref"):
                continue
            out[key] = value
        kind = _single_type(out.get("type"))
        if kind is None:
            kind = _inferred_type(out, default_type)
        out["type"] = kind
        if "format" in out and out["format"] not in ALLOWED_FORMATS:
            del out["format"]
        _fix_enum(out)
        if kind == "object":
            props = out.get("properties") if isinstance(out.get("properties"), dict) else {}
            out["properties"] = {str(name): self.node(sub, depth + 1, refs, "object") for name, sub in props.items()}
            if isinstance(out.get("required"), list):
                out["required"] = [r for r in out["required"] if r in out["properties"]]
            if isinstance(out.get("additionalProperties"), dict):
                out["additionalProperties"] = self.node(out["additionalProperties"], depth + 1, refs, "string")
        else:
            out.pop("properties", None)
            out.pop("required", None)
        if kind == "array":
            items = out.get("items")
            if isinstance(items, list):  # tuple form: the first item's schema stands for all
                items = items[0] if items else {}
            out["items"] = self.node(items, depth + 1, refs, "string") if isinstance(items, dict) and items else {"type": "string"}
        return out

    def _inline(self, schema: dict, refs: tuple) -> tuple[dict, str]:
        ref = schema["$ref"]
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")) else None
        if name is None or name not in self.defs:
            raise SchemaError(f"the reference {str(ref)[:100]!r} does not point into $defs")
        if ref in refs:
            raise SchemaError(f"the reference {ref!r} is recursive")
        target = self.defs[name] if isinstance(self.defs[name], dict) else {}
        # The referring node's own keywords (a field's description, default) win over the definition's.
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}, ref

    def _merge_all_of(self, schema: dict, depth: int, refs: tuple) -> dict:
        merged: dict = {}
        properties: dict = {}
        required: list = []
        for member in schema["allOf"]:
            part = self.node(member, depth + 1, refs, "object")
            properties.update(part.pop("properties", None) or {})
            for name in part.pop("required", None) or ():
                if name not in required:
                    required.append(name)
            for key, value in part.items():
                merged.setdefault(key, value)
        outer = {k: v for k, v in schema.items() if k != "allOf"}
        properties.update(outer.pop("properties", None) or {})
        merged.update(outer)
        if properties or merged.get("type") == "object":
            merged["properties"] = properties
        if required:
            merged["required"] = required
        return merged

    @staticmethod
    def _collapse(schema: dict, union: str) -> dict:
        variants = [v for v in schema[union] if not (isinstance(v, dict) and v.get("type") == "null")]
        if len(variants) > 1:
            raise SchemaError(f"{union} offers several types; GigaChat takes one type per value (Optional[X] is fine)")
        outer = {k: v for k, v in schema.items() if k != union}
        if not variants:
            return outer
        inner = variants[0] if isinstance(variants[0], dict) else {}
        return {**inner, **outer}


def _single_type(value):
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        kinds = [t for t in value if t != "null"]
        if len(kinds) > 1:
            raise SchemaError(f"the type list {kinds} offers several types; GigaChat takes one")
        return kinds[0] if kinds else None
    return None


def _inferred_type(schema: dict, default: str) -> str:
    # As gpt2giga's _infer_missing_type does.
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    values = schema.get("enum") if isinstance(schema.get("enum"), list) else [schema["const"]] if "const" in schema else []
    for value in values:
        if isinstance(value, str):
            return "string"
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "integer"
        if isinstance(value, float):
            return "number"
    return default


def _fix_enum(out: dict) -> None:
    if "const" in out:
        value = out.pop("const")
        out.setdefault("enum", [value])
    values = out.get("enum")
    if values is None:
        return
    if isinstance(values, list):
        values = out["enum"] = [v for v in values if v is not None]  # Optional[Literal[...]]'s null
        if values and all(isinstance(v, str) for v in values):
            return
    del out["enum"]
    if isinstance(values, list) and values:
        listed = ", ".join(_show(v) for v in values[:50])
        out["description"] = f"{out['description']} One of: {listed}." if out.get("description") else f"One of: {listed}."


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:100]
