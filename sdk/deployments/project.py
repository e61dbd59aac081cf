"""``orch.yaml``: the project file that lists a project's deployments, at the project's root.

::

    deployments:
      - name: nightly
        entrypoint: flows.py:hello          # path/to/file.py:flow_function, relative to the project root
        description: Say hello every night
        version: "1.2"
        tags: [examples]
        parameters: {who: world}
        work_queue: default
        infra:                              # or just `infra: process`
          type: docker                      # process | docker | ecs
          overrides: {image: "python:3.11"}
        schedules:
          - cron: "0 2 * * *"
            timezone: Europe/Paris
          - interval: 3600                  # seconds, or an ISO 8601 duration such as PT1H
            active: false
          - rrule: "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9"
        paused: false
        max_lateness: 600                   # seconds (or PT10M): later runs are skipped
        retries: 2
        retry_delay: 30

Unknown keys are refused, so a typo fails loudly. :func:`load_project` reports every problem in one line, with the
path of the value at fault: ``orch.yaml: deployments[0].schedules[1].cron: cron must have 5 fields ...``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from orch.control_plane.schemas.base import Name, Tags
from orch.control_plane.schemas.deployments import ENTRYPOINT_PATTERN, MAX_LATENESS_LIMIT, InfraType
from orch.control_plane.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from orch.exceptions import ConfigurationError

__all__ = ["PROJECT_FILE", "DeploymentConfig", "InfraConfig", "ProjectConfig", "ScheduleConfig", "load_project"]

PROJECT_FILE = "orch.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Active(BaseModel):
    active: bool = True


class CronEntry(CronSchedule, _Active):
    pass


class IntervalEntry(IntervalSchedule, _Active):
    pass


class RRuleEntry(RRuleSchedule, _Active):
    pass


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((k for k in ("cron", "interval", "rrule") if k in value), None)
    kinds: dict[type, str] = {CronEntry: "cron", IntervalEntry: "interval", RRuleEntry: "rrule"}
    return kinds.get(type(value))


ScheduleConfig = Annotated[
    Annotated[CronEntry, Tag("cron")] | Annotated[IntervalEntry, Tag("interval")] | Annotated[RRuleEntry, Tag("rrule")],
    Discriminator(
        _kind,
        custom_error_type="schedule_kind",
        custom_error_message="a schedule needs one of the keys 'cron', 'interval' or 'rrule'",
    ),
]


class InfraConfig(_Strict):
    type: InfraType = "process"
    overrides: dict[str, Any] = Field(default_factory=dict)


def _seconds(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        from pydantic import TypeAdapter

        try:
            return float(value)
        except ValueError:
            pass
        try:
            return TypeAdapter(dt.timedelta).validate_python(value).total_seconds()
        except ValidationError:
            raise ValueError(f"expected seconds or an ISO 8601 duration such as 'PT10M', got {value!r}") from None
    return value


class DeploymentConfig(_Strict):
    """One deployment of the project, as written in ``orch.yaml``."""

    name: Name
    entrypoint: str = Field(max_length=1000)
    description: str | None = Field(default=None, max_length=10_000)
    version: str | None = Field(default=None, max_length=200)
    tags: Tags = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    work_queue: Name | None = Field(default=None, alias="work_queue_name")
    infra: InfraConfig = Field(default_factory=InfraConfig)
    schedules: list[ScheduleConfig] = Field(default_factory=list, max_length=100)
    paused: bool = False
    max_lateness: float | None = Field(default=None, ge=0, le=MAX_LATENESS_LIMIT)
    retries: int | None = Field(default=None, ge=0, le=1000)
    retry_delay: float | None = Field(default=None, ge=0, le=86_400 * 7)
    enforce_parameter_schema: bool = True

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_shape(cls, value: str) -> str:
        if not re.match(ENTRYPOINT_PATTERN, value):
            raise ValueError(f"entrypoint must look like path/to/file.py:flow_function, got {value!r}")
        return value

    @field_validator("infra", mode="before")
    @classmethod
    def _infra_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("max_lateness", "retry_delay", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # `version: 1.2` in YAML is a float; a version is text.
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    def schedules_for_api(self) -> list[dict[str, Any]]:
        """The schedules as ``DeploymentScheduleCreate`` bodies."""
        out = []
        for entry in self.schedules:
            spec = entry.model_dump(mode="json", exclude_defaults=True, exclude={"active"})
            spec["timezone"] = entry.timezone
            out.append({"schedule": spec, "active": entry.active})
        return out


class ProjectConfig(_Strict):
    """The whole ``orch.yaml``."""

    deployments: list[DeploymentConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectConfig:
        seen: set[str] = set()
        for deployment in self.deployments:
            if deployment.name in seen:
                raise ValueError(f"deployment name {deployment.name!r} is used twice")
            seen.add(deployment.name)
        return self

    def select(self, name: str | None, all_: bool) -> list[DeploymentConfig]:
        """The deployments ``orch deploy`` acts on: ``--name``, ``--all``, or the only one there is."""
        names = [d.name for d in self.deployments]
        if name is not None:
            chosen = [d for d in self.deployments if d.name == name]
            if not chosen:
                raise ConfigurationError(f"{PROJECT_FILE} has no deployment {name!r} (it has: {', '.join(names)}).")
            return chosen
        if all_ or len(self.deployments) == 1:
            return list(self.deployments)
        raise ConfigurationError(
            f"{PROJECT_FILE} has {len(names)} deployments ({', '.join(names)}): pass --name NAME or --all."
        )


def describe_errors(exc: ValidationError, source: str = PROJECT_FILE) -> str:
    """A pydantic error as one line: ``orch.yaml: deployments[0].schedules[1].cron: <reason>; ...``."""
    problems = []
    for error in exc.errors(include_url=False):
        path = _location(error.get("loc") or ())
        message = str(error.get("msg", "invalid"))
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        problems.append(f"{path}: {message}" if path else message)
    return f"{source}: " + "; ".join(problems)


def _location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        if part in _SCHEDULE_TAGS and isinstance(following, str):
            # A discriminated union puts its tag before the field ("cron", "timezone"): the field is enough.
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else ("." if parts else "") + str(part))
    return "".join(parts)


_SCHEDULE_TAGS = frozenset({"cron", "interval", "rrule"})


def load_project(folder: str | Path) -> ProjectConfig:
    """Read and validate ``orch.yaml`` in ``folder``; raises ``ConfigurationError`` with a one-line message."""
    import yaml

    path = Path(folder) / PROJECT_FILE
    if not path.is_file():
        raise ConfigurationError(f"{PROJECT_FILE} not found in {Path(folder).resolve()}.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(f"{PROJECT_FILE}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{PROJECT_FILE}: cannot read it: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{PROJECT_FILE}: expected a mapping with a 'deployments' list.")
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(exc)) from None
