"""The web editor of ``ivos serve``: the page at ``/`` (static files shipped in ``ivos/web/``,
no build step, nothing fetched from elsewhere; mounted at ``/web`` by ``create_app``) and the
few read-only routes a browser needs that the rest of the API had no reason to offer:

    GET  /                                      the editor (index.html)
    GET  /web/{file}                            its JavaScript modules and stylesheet
    POST /v1/videos/demo                        a video session of the bundled demo clip
                                                (``ivos/data/demo_clip.mp4``) -> 201, as POST /v1/videos
    GET  /v1/videos/{id}/frames/{frame}/image   frame ``frame`` as a JPEG (what the browser shows)
    GET  /v1/images/{id}/image                  an image session's stored image

The editor itself uses only the public HTTP API (the same routes as ``ivos.Client``). The page
and its files need no API key (they hold no data); every ``/v1`` route here checks the key as
the others do.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..deps import ImageSession, Owner, ServiceDep, VideoSession
from ..errors import ApiError
from ..schemas import DemoInfo, DemoSessionOut, errors

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
"""The editor's files (installed as the data package ``ivos.web``)."""
DEMO_CLIP = Path(__file__).resolve().parents[2] / "data" / "demo_clip.mp4"
FRAME_JPEG_QUALITY = 90
FRAME_CACHE = "private, max-age=86400, immutable"
"""A session's frames never change (a new video is a new session), so the browser may keep them."""
IMAGE_MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".bmp": "image/bmp"}

router = APIRouter(responses=errors(401, 404, 422, 429, 503))


class NoCacheStatic(StaticFiles):
    """Static files the browser revalidates every time (an upgraded server never runs an old
    editor script against a new API)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> NoCacheStatic:
    """The editor's files, for ``app.mount("/web", ...)``; RuntimeError when the install lost them."""
    if not (WEB_DIR / "index.html").is_file():  # a broken install: say so at start-up rather than 404
        raise RuntimeError(f"the web editor's files are missing: {WEB_DIR / 'index.html'}")
    return NoCacheStatic(directory=str(WEB_DIR))


def frame_jpeg(frame: Any, quality: int = FRAME_JPEG_QUALITY) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@router.get("/", include_in_schema=False)
def editor_page() -> HTMLResponse:
    return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


@router.post("/v1/videos/demo", status_code=201, tags=["videos"], response_model=DemoSessionOut,
             response_model_exclude_unset=True)
async def create_demo_video(who: Owner, service: ServiceDep) -> DemoSessionOut:
    """A video session of the bundled demo clip (CC0, 40 frames at 480x272); the answer also
    has ``demo``: its suggested first click and source."""
    path = service.temp_path("demo")
    meta = await run_in_threadpool(copy_demo, path)
    try:
        rec = await service.requests.run(service.create_video, who, video=path)
    finally:
        path.unlink(missing_ok=True)
    return DemoSessionOut.of(rec, demo=DemoInfo(name=DEMO_CLIP.name, clicks=meta.get("clicks", []),
                                                license=meta.get("license")))


def copy_demo(path: Path) -> dict[str, Any]:
    """Copies the demo clip to ``path``; returns its metadata (``demo_clip.json``; 404 when this
    install has no demo clip)."""
    if not DEMO_CLIP.is_file():
        raise ApiError(404, "demo_missing", "this install has no demo clip")
    shutil.copyfile(DEMO_CLIP, path)
    meta_file = DEMO_CLIP.with_suffix(".json")
    return json.loads(meta_file.read_text()) if meta_file.is_file() else {}


@router.get("/v1/videos/{session_id}/frames/{frame_idx}/image", tags=["videos"], response_class=Response,
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "the frame as a JPEG"}})
async def frame_image(frame_idx: int, rec: VideoSession, service: ServiceDep) -> Response:
    """Frame ``frame_idx`` as a JPEG (quality 90), as the session decodes it."""
    frame = await service.requests.run(service.video_frame, rec, frame_idx)
    data = await service.requests.run(frame_jpeg, frame)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": FRAME_CACHE})


@router.get("/v1/images/{session_id}/image", tags=["images"], response_class=FileResponse,
            responses={200: {"content": {m: {"schema": {"type": "string", "format": "binary"}}
                                         for m in sorted(set(IMAGE_MEDIA.values()))},
                             "description": "the stored image"}})
def image_file(rec: ImageSession, service: ServiceDep) -> FileResponse:
    """The image of the session as stored (PNG, JPEG, WebP or BMP; rotated images as PNG)."""
    path = service.blobs.fetch(rec.media)
    media = IMAGE_MEDIA.get(path.suffix.lower(), "application/octet-stream")
    # changes with PUT .../image: revalidate by the file's ETag
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})
