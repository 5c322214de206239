"""Models of OGC API - Processes - Part 1: Core (``/processes``, ``/jobs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from twin.api.schemas.features import Link

JobStatus = Literal["accepted", "running", "successful", "failed", "dismissed"]


class ProcessSummary(BaseModel):
    id: str = Field(description="the process: flood or traffic")
    title: str
    description: str
    version: str
    jobControlOptions: list[str] = Field(description="sync-execute, async-execute")
    outputTransmission: list[str] = Field(description="value (outputs inline)")
    links: list[Link]


class ProcessList(BaseModel):
    processes: list[ProcessSummary]
    links: list[Link]


class InputDescription(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    title: str
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema", description="the input's JSON Schema")
    minOccurs: int = 0
    maxOccurs: int = 1


class OutputDescription(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    title: str
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema", description="the output's JSON Schema")


class ProcessDescription(ProcessSummary):
    inputs: dict[str, InputDescription] = Field(description="by input id")
    outputs: dict[str, OutputDescription] = Field(description="by output id")


class Execute(BaseModel):
    """An execute request: the inputs by id (the fields of ``/api/simulations/{kind}``)."""

    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] | None = Field(None, description="accepted; every output is sent")
    response: Literal["document", "raw"] = Field("document", description="document only")
    subscriber: dict[str, Any] | None = Field(None, description="not supported; ignored")


class StatusInfo(BaseModel):
    processID: str | None = None
    type: Literal["process"] = "process"
    jobID: str
    status: JobStatus
    message: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime | None = None
    progress: int | None = Field(None, ge=0, le=100, description="percent")
    links: list[Link]


class JobList(BaseModel):
    jobs: list[StatusInfo] = Field(description="newest first")
    links: list[Link]


class Results(RootModel[dict[str, Any]]):
    """The results document: ``summary`` (the run in numbers, as in ``/api/simulations/{id}``)
    and ``cells`` (a link to the per-cell results)."""


class OgcException(BaseModel):
    type: str = Field(description="the exception type URI")
    title: str
    status: int
    detail: str
