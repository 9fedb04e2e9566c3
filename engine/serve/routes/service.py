"""Service routes: ``/healthz`` (the process answers), ``/readyz`` (models loaded, store
reachable), ``/metrics`` (Prometheus; needs a key when the server has keys) and
``/v1/sessions`` (this key's sessions)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..deps import Owner, ServiceDep, get_owner
from ..errors import ApiError, store_unavailable
from ..store import StoreUnavailable
from ..schemas import HealthOut, ReadyOut, SessionList, SessionOut, errors

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process answers (nothing else is checked)."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, responses=errors(503))
def readyz(service: ServiceDep) -> ReadyOut:
    """200 once the models are loaded and the store can be read; 503 until then."""
    try:
        service.store.count_sessions()
    except StoreUnavailable as e:
        raise store_unavailable(e.retry_after) from None
    except Exception as e:
        raise ApiError(503, "store_unavailable", f"the store cannot be read ({type(e).__name__})",
                       headers={"Retry-After": "2"}) from None
    service.require_ready()
    return ReadyOut(status="ready", model=service.click_model.backend, osvos=service.osvos_model.backend,
                    instance=service.instance)


@router.get("/metrics", dependencies=[Depends(get_owner)], response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}, **errors(401)})
def metrics(request: Request) -> Response:
    """Prometheus metrics of this process (``ivos.serve.metrics``)."""
    body, media = request.app.state.metrics.render()
    return Response(body, media_type=media)


@router.get("/v1/sessions", response_model=SessionList, response_model_exclude_unset=True,
            responses=errors(401, 422))
def list_sessions(who: Owner, service: ServiceDep,
                  kind: Annotated[Optional[Literal["image", "video"]], Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> SessionList:
    """This key's sessions, most recently changed first."""
    return SessionList(sessions=[SessionOut.of(r) for r in service.list_sessions(who, kind, limit)])
