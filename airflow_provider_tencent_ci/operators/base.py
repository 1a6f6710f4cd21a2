"""What every operator and sensor of the provider shares, once.

- ``hook_class`` names the hook (its import path: DAG files are parsed without importing the SDKs);
  :attr:`~TencentCloudBaseMixin.hook` imports and builds it on first use and keeps it (one connection lookup per
  task, not one per poke).
- ``tencentcloud_conn_id`` and ``region`` are templated on every operator and sensor
  (:func:`tencentcloud_template_fields`, as Amazon's ``aws_template_fields``).
- ``params`` is the component's :class:`~airflow_provider_tencent_ci.params.ParamSpec`: it is validated when
  construction has finished (static values; the subclass's ``__init__`` may set its attributes in any order) and
  again after rendering (:meth:`~TencentCloudBaseMixin.validate_params`).
- :meth:`~TencentCloudBaseMixin.resolved_region` is the one place for "a region is required".
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from airflow.sdk import BaseOperator, BaseSensorOperator

from airflow_provider_tencent_ci.constants import DEFAULT_CONN_ID
from airflow_provider_tencent_ci.params import ParamSpec, Values
from airflow_provider_tencent_ci.validation import require_region

if TYPE_CHECKING:
    from airflow_provider_tencent_ci.hooks.base import TencentCloudBaseHook

HookT = TypeVar("HookT", bound="TencentCloudBaseHook")
CI_HOOK = "airflow_provider_tencent_ci.hooks.ci.CIHook"
BDA_HOOK = "airflow_provider_tencent_ci.hooks.bda.BDAHook"

CONNECTION_TEMPLATE_FIELDS = ("tencentcloud_conn_id", "region")


def openlineage_facets(inputs: Sequence[tuple[str, str]], outputs: Sequence[tuple[str, str]]) -> Any:
    """OpenLineage datasets from (namespace, name) pairs (``cos://<bucket>`` + key, ``file`` + path).

    None when the OpenLineage provider is not installed: lineage is optional, never a dependency.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[Dataset(namespace=ns, name=name) for ns, name in outputs],
    )


def tencentcloud_template_fields(*fields: str) -> tuple[str, ...]:
    """A subclass's template fields plus the connection id and the region (each once, in order)."""
    return tuple(dict.fromkeys((*fields, *CONNECTION_TEMPLATE_FIELDS)))


class TencentCloudBaseMixin(Generic[HookT]):
    """The shared part of :class:`TencentCloudBaseOperator` and :class:`TencentCloudBaseSensor`."""

    hook_class: ClassVar[str]  # "package.module.HookClass"
    params_spec: ClassVar[ParamSpec | None] = None
    tencentcloud_conn_id: str
    region: str | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Validate static values once the OUTERMOST __init__ has returned (not in the base's __init__), so a
        # subclass sets its attributes after super().__init__() like any Python class.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _validate_after(init)  # type: ignore[method-assign]

    @cached_property
    def hook(self) -> HookT:
        return cast("HookT", make_hook(self.hook_class, self.tencentcloud_conn_id, self.region))

    def resolved_region(self) -> str:
        """The operator's region, else the connection's; a clear error without either."""
        return require_region(self.region or self.hook.region)

    def param_values(self) -> dict[str, Any]:
        """The current value of every described parameter (templated or not)."""
        spec = self.params_spec
        return {name: getattr(self, name, None) for name in (spec.names if spec else ())}

    def validate_params(self, *, rendered: bool) -> Values:
        """Check every described parameter (before rendering: those already known) and the rules between them."""
        spec = self.params_spec
        if spec is None:
            return Values({}, {})
        return spec.validate(self.param_values(), rendered=rendered)

    def _after_init(self) -> None:
        """Runs once, after the outermost ``__init__``: check what is known at DAG parse time."""
        self.validate_params(rendered=False)


def make_hook(classpath: str, tencentcloud_conn_id: str, region: str | None) -> TencentCloudBaseHook:
    """Import the hook class named by ``classpath`` (at run time only) and build it."""
    module, _, name = classpath.rpartition(".")
    hook_type: type[TencentCloudBaseHook] = getattr(importlib.import_module(module), name)
    return hook_type(tencentcloud_conn_id=tencentcloud_conn_id, region=region)


def _validate_after(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def wrapper(self: TencentCloudBaseMixin[Any], *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_tc_init_depth", 0)
        object.__setattr__(self, "_tc_init_depth", depth + 1)
        try:
            init(self, *args, **kwargs)
        finally:
            object.__setattr__(self, "_tc_init_depth", depth)
        if depth == 0:
            self._after_init()

    return wrapper


class TencentCloudBaseOperator(TencentCloudBaseMixin[HookT], BaseOperator):
    """Base of the provider's operators, parameterised by the hook class (``hook_class``)."""

    template_fields: Sequence[str] = CONNECTION_TEMPLATE_FIELDS

    def __init__(
        self, *, tencentcloud_conn_id: str = DEFAULT_CONN_ID, region: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.tencentcloud_conn_id = tencentcloud_conn_id
        self.region = region


class TencentCloudBaseSensor(TencentCloudBaseMixin[HookT], BaseSensorOperator):
    """Base of the provider's sensors: the same hook, template fields and validation as the operators."""

    template_fields: Sequence[str] = CONNECTION_TEMPLATE_FIELDS

    def __init__(
        self, *, tencentcloud_conn_id: str = DEFAULT_CONN_ID, region: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.tencentcloud_conn_id = tencentcloud_conn_id
        self.region = region
