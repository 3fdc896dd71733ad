"""Building blocks shared by both kinds: the base model, conditions and object references."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel, to_snake

# One class for a latency distribution, in Job results and in status alike (re-exported).
from quantfleet.api.results import Percentiles as Percentiles

GROUP = "quantfleet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# The API's kinds and their resource names (plurals: URLs, Kopf handlers, RBAC, the CRDs).
QUANTIZED_MODEL, QUANTIZED_MODELS = "QuantizedModel", "quantizedmodels"
BENCHMARK_RUN, BENCHMARK_RUNS = "BenchmarkRun", "benchmarkruns"
PLURALS = {QUANTIZED_MODEL: QUANTIZED_MODELS, BENCHMARK_RUN: BENCHMARK_RUNS}
# metav1.Condition bounds a message at 1024 characters.
MAX_MESSAGE_CHARS = 1024

# A Kubernetes quantity ("4", "16Gi", 2): int or string, as the API server stores it.
Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# An object of ours names its Service (a DNS-1035 label) and labels its children (label values
# are at most 63 characters): a name the API server admits that these would refuse is refused at
# admission instead of failing later on a child (issue 14).
OBJECT_NAME = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
# A location path that escapes or aliases: an empty segment (a//b), `.` or `..`. A trailing `/`
# is the same folder and stays allowed. Searched from the start of the URI.
UNCLEAN_PATH = r"^[a-z0-9]+://(.*//|(.*/)?[.]{1,2}(/|$))"
# An image reference as the container runtimes parse it (distribution/reference): an optional
# registry host[:port], lower-case path components, an optional tag and/or sha256 digest.
IMAGE_REFERENCE = (
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)

# A ConfigMap's or a Secret's name (a DNS-1123 subdomain) and a key in one, as the API server
# checks them on the Job or Deployment that mounts them: refused at admission instead of ending
# in a bare 422 on a child (issue 32).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY = r"^[-._a-zA-Z0-9]+$"
# What no name or argument of ours may hold: the C0 and C1 controls (NUL, newline, escape), DEL,
# and the bidirectional marks, embeddings, overrides and isolates that make text display other
# than it reads (Trojan Source, CVE-2021-42574). Code point ranges, written out below as RE2 in a
# CEL string literal (its backslashes doubled) and for Python's re.
UNPRINTABLE = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x61C, 0x61C),
    (0x200E, 0x200F),
    (0x202A, 0x202E),
    (0x2066, 0x2069),
)
UNPRINTABLE_CEL = "[" + "".join(f"\\\\x{{{a:x}}}-\\\\x{{{b:x}}}" for a, b in UNPRINTABLE) + "]"
UNPRINTABLE_CHARACTERS = re.compile(
    "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in UNPRINTABLE) + "]"
)

# Conditions are a map keyed by type, so server-side apply merges them per type.
CONDITIONS_LIST: dict[str, JsonValue] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, said once for both checks: `cel` for the API server (the CRD's
    x-kubernetes-validations) and `holds` for the models, with one message; `field_path`
    (`.name`) makes both name the field."""

    cel: str
    holds: Callable[[Any], bool]
    message: str
    field_path: str | None = None

    def schema(self) -> dict[str, JsonValue]:
        """The rule as one `x-kubernetes-validations` entry."""
        entry: dict[str, JsonValue] = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry

    def broken_message(self) -> str:
        """The message as the models say it: prefixed with the field, as the API server does."""
        return f"{self.field_path[1:]}: {self.message}" if self.field_path else self.message


def object_name_rule() -> Rule:
    """The root rule on our kinds' names (OBJECT_NAME); CEL sees metadata.name at the root."""
    return Rule(
        f"self.metadata.name.matches('{OBJECT_NAME}')",
        lambda obj: re.fullmatch(OBJECT_NAME, str(obj.metadata.get("name", ""))) is not None,
        "metadata.name must be at most 63 characters of lower-case letters, digits and '-', "
        "starting with a letter: it names the Service and labels every child",
    )


def clean_path_rule(field: str) -> Rule:
    """A location field (camelCase `field`, optional) without empty, `.` or `..` segments."""
    return Rule(
        f"!has(self.{field}) || !self.{field}.matches('{UNCLEAN_PATH}')",
        lambda model: re.match(UNCLEAN_PATH, getattr(model, to_snake(field)) or "") is None,
        "no empty, '.' or '..' path segments",
        f".{field}",
    )


def printable_rule(field: str, each: bool = False) -> Rule:
    """An optional string field (by its camelCase name), or each string of a list field (`each`),
    without control or bidirectional characters (UNPRINTABLE)."""

    def holds(model: Any) -> bool:
        value = getattr(model, to_snake(field))
        items = [value] if isinstance(value, str) else value or []
        return not any(UNPRINTABLE_CHARACTERS.search(item) for item in items)

    return Rule(
        f"!has(self.{field}) || "
        + (
            f"self.{field}.all(s, !s.matches('{UNPRINTABLE_CEL}'))"
            if each
            else f"!self.{field}.matches('{UNPRINTABLE_CEL}')"
        ),
        holds,
        "no control characters (newline, NUL, ...) nor bidirectional overrides or marks",
        f".{field}",
    )


def reference_rules(kind: str) -> tuple[Rule, Rule]:
    """The name and key of a reference to a `kind` (ConfigMap or Secret), as the API server
    would check them on the child that uses them."""
    return (
        Rule(
            f"self.name.matches('{DNS_SUBDOMAIN}')",
            lambda ref: re.fullmatch(DNS_SUBDOMAIN, ref.name) is not None,
            f"a {kind}'s name is lower-case letters, digits, '-' and '.' (no spaces, control or "
            "bidirectional characters)",
            ".name",
        ),
        Rule(
            f"self.key.matches('{DATA_KEY}')",
            lambda ref: re.fullmatch(DATA_KEY, ref.key) is not None,
            f"a {kind} key is letters, digits, '-', '_' and '.'",
            ".key",
        ),
    )


def one_of(first: str, second: str) -> Rule:
    """Exactly one of two optional fields (by their camelCase names) is set."""

    def holds(model: Any) -> bool:
        return (getattr(model, to_snake(first)) is None) != (
            getattr(model, to_snake(second)) is None
        )

    return Rule(
        f"has(self.{first}) != has(self.{second})", holds, f"set exactly one of {first} or {second}"
    )


def _rules_schema(schema: dict[str, JsonValue], model: type[Any]) -> None:
    """The model's rules into its generated schema."""
    if model.rules:
        schema["x-kubernetes-validations"] = [rule.schema() for rule in model.rules]


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused, and the model's
    cross-field `rules` checked here and carried into the CRD."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        json_schema_extra=_rules_schema,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _rules_hold(self) -> Self:
        broken = [rule.broken_message() for rule in self.rules if not rule.holds(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self


class Condition(ApiModel):
    """A metav1.Condition: one aspect of the object's observed state."""

    type: str = Field(description="The aspect this condition reports, in PascalCase (Ready).")
    status: Literal["True", "False", "Unknown"] = Field(
        description="Whether the aspect holds: True, False or Unknown."
    )
    reason: str = Field(
        description="A PascalCase reason for the last transition, for machines to match on."
    )
    message: str = Field(
        default="", max_length=MAX_MESSAGE_CHARS, description="A short human-readable explanation."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was set from."
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When the status last changed."
    )


class SecretKeyRef(ApiModel):
    """A reference to one key of a Secret in the object's namespace; the operator never reads it."""

    name: str = Field(max_length=253, description="Name of the Secret.")
    key: str = Field(max_length=253, description="Key within the Secret.")

    rules = reference_rules("Secret")


class ConfigMapKeyRef(ApiModel):
    """A reference to one key of a ConfigMap in the object's namespace."""

    name: str = Field(max_length=253, description="Name of the ConfigMap.")
    key: str = Field(max_length=253, description="Key within the ConfigMap.")

    rules = reference_rules("ConfigMap")


class LocalObjectRef(ApiModel):
    """A reference to an object of a known kind in the same namespace."""

    name: str = Field(max_length=253, pattern=DNS_LABEL, description="Name of the object.")


class Resources(ApiModel):
    """Compute resources for a container, in Kubernetes quantities."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum resources, e.g. {cpu: 8, memory: 64Gi}."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        description='Maximum resources, e.g. {memory: 128Gi, "nvidia.com/gpu": 1}.',
    )


def kueue_queue_field(description: str) -> Any:
    """A Kueue LocalQueue name (a DNS-1123 label, checked at admission), unset by default."""
    return Field(default=None, max_length=63, pattern=DNS_LABEL, description=description)
