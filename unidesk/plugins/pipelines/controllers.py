"""HTTP handlers of the pipelines plugin under /api/pipelines."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import Principal, Settings, plugin_settings
from unidesk.errors import PayloadTooLarge
from unidesk.plugins.pipelines import schemas as s
from unidesk.plugins.pipelines.services import PipelineService
from unidesk.plugins.pipelines.settings import PipelinesSettings
from unidesk.plugins.pipelines.spec import YAML_TYPES, decode

__all__ = ["PipelineController"]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest pipeline document (JSON or YAML)."""


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with msgspec's ``$defs`` references replaced by what they name."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _create_schema() -> Any:
    raw = msgspec.json.schema(s.PipelineCreate)
    return _inline(raw, raw.get("$defs", {}))


@dataclass
class _SubmitOperation(Operation):
    """The submit route reads its body itself (JSON or YAML); the document still says what the
    body is, so clients and the fuzzer know it."""

    def __post_init__(self) -> None:
        schema = _create_schema()
        self.request_body = RequestBody(
            required=True,
            description="A PipelineCreate, as JSON or as the same document in YAML.",
            content={
                media: OpenAPIMediaType(schema=schema)
                for media in ("application/json", YAML_TYPES[0])
            },
        )


def _service(
    db: AsyncSession, principal: Principal, settings: Settings, state: State
) -> PipelineService:
    return PipelineService(
        db, principal, settings, state.plugins, plugin_settings(state, PipelinesSettings)
    )


class PipelineController(Controller):
    path = "/api/pipelines"
    tags = ("pipelines",)

    @post(
        "/",
        operation_id="pipelines_submit",
        status_code=201,
        operation_class=_SubmitOperation,
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> s.Pipeline:
        """Submit a pipeline: a ``PipelineCreate`` as JSON, or the same document as YAML
        (``Content-Type: application/yaml``). Every problem is listed in one 400 (``errors``:
        path and detail each); nothing is created then."""
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body: at most {MAX_BODY_BYTES} bytes")
        data = decode(raw, request.headers.get("content-type") or "application/json")
        return await _service(db, principal, settings, state).create(data)

    @get("/", operation_id="pipelines_list")
    async def list_pipelines(
        self,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=400)] = None,
        pipeline_state: Annotated[str | None, Parameter(query="state", max_length=32)] = None,
    ) -> s.PipelinePage:
        """Pipelines, newest first (every member reads every pipeline)."""
        return await _service(db, principal, settings, state).list(limit, cursor, pipeline_state)

    @get("/{pipeline_id:uuid}", operation_id="pipelines_get")
    async def get_pipeline(
        self,
        pipeline_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> s.Pipeline:
        """A pipeline with its steps, their tasks (one per matrix point) and files."""
        return await _service(db, principal, settings, state).get(pipeline_id)

    @get("/{pipeline_id:uuid}/trace", operation_id="pipelines_trace")
    async def trace(
        self,
        pipeline_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
        tasks: bool = False,
    ) -> s.TraceOut:
        """The pipeline's events, oldest first; ``tasks=true`` merges in its step tasks' traces
        (every round), in event order."""
        return s.TraceOut(
            items=await _service(db, principal, settings, state).trace(pipeline_id, tasks=tasks)
        )

    @post("/{pipeline_id:uuid}/cancel", operation_id="pipelines_cancel", status_code=200)
    async def cancel(
        self,
        pipeline_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> s.Pipeline:
        """Cancel: running steps' tasks are cancelled, steps not started are skipped."""
        return await _service(db, principal, settings, state).cancel(pipeline_id)

    @post(
        "/{pipeline_id:uuid}/steps/{step:str}/retry",
        operation_id="pipelines_retry_step",
        status_code=200,
    )
    async def retry(
        self,
        pipeline_id: uuid.UUID,
        step: Annotated[str, Parameter(max_length=200)],
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> s.Pipeline:
        """Run a failed or cancelled step again; the pipeline resumes from it."""
        return await _service(db, principal, settings, state).retry(pipeline_id, step)

    @post("/{pipeline_id:uuid}/rerun", operation_id="pipelines_rerun", status_code=201)
    async def rerun(
        self,
        pipeline_id: uuid.UUID,
        data: s.RerunCreate,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> s.Pipeline:
        """Submit the pipeline again as a new one, at the same or new commits."""
        return await _service(db, principal, settings, state).rerun(pipeline_id, data)
