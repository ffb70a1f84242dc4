"""schemathesis hooks for the battery (SCHEMATHESIS_HOOKS=bench.chaos.schema_hooks). The /v1 schema is what
pydantic validates, which is looser than the gateway's own checks after it (a `tool` message needs a
`tool_call_id`, any message needs content, an embeddings input is not empty): left as it is, nearly every
positive case is a 400 and none reaches a provider. So, for positive cases to mean something: `model` names one
of the battery's configured models, a message is a user message with text content, and an embeddings input is
a non-empty text."""

import schemathesis

from bench.chaos.provision import EMBEDDING_MODEL, FALLBACK_MODEL, MODEL


@schemathesis.hook
def before_load_schema(context, raw_schema: dict) -> None:
    for name, component in raw_schema.get("components", {}).get("schemas", {}).items():
        if not name.startswith("V1"):
            continue
        properties = component.get("properties", {})
        if isinstance(properties.get("model"), dict) and properties["model"].get("type") == "string":
            models = [EMBEDDING_MODEL] if "Embedding" in name else [MODEL, FALLBACK_MODEL]
            properties["model"] = {"type": "string", "enum": models}
        if "Embedding" in name and "input" in properties:
            properties["input"] = {"type": "string", "minLength": 1, "maxLength": 200}
        if "role" in properties and "content" in properties:
            component["properties"] = {"role": {"type": "string", "enum": ["user"]},
                                       "content": {"type": "string", "minLength": 1, "maxLength": 200}}
            component["required"] = ["role", "content"]
            component["additionalProperties"] = False
