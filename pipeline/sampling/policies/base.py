"""What every policy is: a frozen, validated specification that builds an evaluator.

Specifications compare by value, so a configuration loaded from ``otel-config.yaml`` and one written as a Python
dict can be checked for equality. Stateless policies are their own evaluator; stateful ones (rate limiting,
composite budgets, the dynamic and rare samplers, error boost) build a fresh evaluator per processor so two
processors never share a token bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from opentelemetry.util.types import AttributeValue

from pipeline.errors import ConfigError
from pipeline.sampling.decision import Decision
from pipeline.sampling.trace import TraceView

if TYPE_CHECKING:
    from pipeline.sampling.boost import ErrorSignal


class Policy(Protocol):
    """An evaluator: looks at a finished trace at time ``now`` (seconds, the processor's clock)."""

    @property
    def name(self) -> str: ...

    def evaluate(self, trace: TraceView, now: float) -> Decision: ...


class Observer(Protocol):
    """A stateful signal fed with every decided trace, whether or not its policy was evaluated."""

    def observe(self, trace: TraceView, now: float) -> None: ...


class Marker(Protocol):
    """Adds attributes to some spans of a kept trace (e.g. the N+1 detector's marks), whichever policy kept it."""

    def marks(self, trace: TraceView) -> Mapping[int, Mapping[str, AttributeValue]]:
        """Extra attributes by span id; empty when there is nothing to mark."""
        ...


@dataclass
class BuildContext:
    """Collects what evaluators share with the engine while a policy tree is built."""

    observers: list[Observer] = field(default_factory=list)
    signals: list[ErrorSignal] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)


@dataclass(frozen=True)
class PolicySpec:
    """Base of every policy specification. ``TYPE`` is the configuration's ``type:`` value."""

    TYPE: ClassVar[str] = ""
    name: str

    def build(self, ctx: BuildContext) -> Policy:
        """Return the evaluator; stateless specs are their own evaluator."""
        # A stateless spec's class defines evaluate() and so is a Policy; this base class has none to show mypy.
        return self  # type: ignore[return-value]

    @property
    def stateful(self) -> bool:
        """True when a vote can depend on other traces or on spans still to come (refused in span-ingest mode,
        as upstream's ``IsStateful``)."""
        return False

    def warnings(self) -> list[str]:
        """What Sieve accepts in this policy but ignores or treats differently from the Collector."""
        return []

    def _setting(self, key: str) -> str:
        return f"policies.{self.name}.{self.TYPE}.{key}"

    def _require(self, ok: bool, key: str, value: object, accepted: str) -> None:
        if not ok:
            raise ConfigError(self._setting(key), value, accepted)
