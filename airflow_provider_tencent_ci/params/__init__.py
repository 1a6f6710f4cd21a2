"""Each component's documented parameters, described once, as data.

A :class:`Param` is one parameter: its check (type, range or choices; a function from :mod:`..validation`), the rule
in words, the document it comes from, and where it goes on the wire. A :class:`Rule` is a rule between parameters.
A :class:`ParamSpec` groups them for one component and is the only place that:

- validates: at construction, values that are not known yet (Jinja text, XComArg) are skipped; after rendering,
  everything is checked. Every parameter of the spec is checked, templated or not;
- builds the request part the parameters map to (:meth:`ParamSpec.wire`);
- documents them: ``docs/constraints.md`` is rendered from the specs (``make docs``; see :mod:`.docs`).

Errors are :class:`~airflow_provider_tencent_ci.exceptions.ParameterValidationError` naming the parameter, the value
and the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_tencent_ci.validation import is_unresolved

Check = Callable[[str, Any], Any]  # (parameter name, value) -> the value normalised; raises on a broken rule

PROVIDER = "provider"  # a parameter of this provider, not of a Tencent API


@dataclass(frozen=True)
class Param:
    """One parameter: ``check`` validates and normalises it; ``wire`` is its name in the request (a CI query
    parameter, or a dotted path in a job request) and ``encode`` turns the normalised value into the wire value."""

    name: str
    check: Check
    rule: str
    source: str = PROVIDER
    wire: str | None = None
    encode: Callable[[Any], Any] = str
    required: bool = False
    templated: bool = True


@dataclass(frozen=True)
class Rule:
    """A rule between parameters. ``check`` receives the :class:`Values`. ``params`` are the names whose values it
    reads (at construction the rule waits until all of them are known); ``presence`` the names it only asks
    "is it set?" about (known even while templated)."""

    params: tuple[str, ...]
    rule: str
    check: Callable[[Values], None]
    source: str = PROVIDER
    presence: tuple[str, ...] = ()


@dataclass
class Values:
    """What a :class:`Rule` sees: the raw values, the normalised ones, and which are set."""

    raw: Mapping[str, Any]
    checked: dict[str, Any]
    blank_is_absent: bool = False

    def given(self, name: str) -> bool:
        value = self.raw.get(name)
        return value is not None and not (self.blank_is_absent and value == "")

    def get(self, name: str, default: Any = None) -> Any:
        """The normalised value when it was checked, else the raw value (``default`` when unset)."""
        if name in self.checked:
            return self.checked[name]
        return self.raw.get(name) if self.given(name) else default


@dataclass(frozen=True)
class ParamSpec:
    """The parameters of one component (see the module documentation)."""

    component: str
    params: tuple[Param, ...]
    rules: tuple[Rule, ...] = ()
    summary: str = ""
    # CI documents an empty element as "not set": treat "" like None (SegmentVideoBody).
    blank_is_absent: bool = False
    by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.params})
        unknown = {n for r in self.rules for n in (*r.params, *r.presence)} - set(self.by_name)
        if unknown:
            raise ValueError(f"{self.component}: rules read undeclared parameters {sorted(unknown)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    @property
    def template_fields(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.templated)

    def validate(self, values: Mapping[str, Any], *, rendered: bool) -> Values:
        """Check every parameter, then every rule. Before rendering, values not known yet are skipped."""
        result = Values(values, {}, self.blank_is_absent)
        for param in self.params:
            value = values.get(param.name)
            if not rendered and is_unresolved(value):
                continue
            if result.given(param.name):
                result.checked[param.name] = param.check(param.name, value)
            elif param.required:
                param.check(param.name, value)  # raises, naming the parameter and its rule
        for rule in self.rules:
            if rendered or not any(is_unresolved(values.get(n)) for n in rule.params):
                rule.check(result)
        return result

    def wire(self, checked: Mapping[str, Any]) -> dict[str, Any]:
        """``{wire name: encoded value}`` of the checked parameters that have a wire name, in declaration order."""
        return {p.wire: p.encode(checked[p.name]) for p in self.params if p.wire and p.name in checked}

    def with_params(self, component: str, *params: Param, rules: tuple[Rule, ...] = (), summary: str = "") -> ParamSpec:
        """A spec extending this one (a subclass's own parameters after the shared ones)."""
        return ParamSpec(
            component, (*self.params, *params), (*self.rules, *rules), summary or self.summary, self.blank_is_absent
        )


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"A.B": 1, "A.C": 2}`` -> ``{"A": {"B": 1, "C": 2}}`` (job requests are nested XML elements)."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = out
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return out
