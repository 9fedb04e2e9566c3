"""The web editor of ``ivos serve``: the page at ``/`` (static files shipped in ``ivos/web/``,
no build step, nothing fetched from elsewhere) and the few read-only routes a browser needs
that the rest of the API had no reason to offer:

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
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
"""The editor's files (installed as the data package ``ivos.web``)."""
DEMO_CLIP = Path(__file__).resolve().parent.parent / "data" / "demo_clip.mp4"
FRAME_JPEG_QUALITY = 90
FRAME_CACHE = "private, max-age=86400, immutable"
"""A session's frames never change (a new video is a new session), so the browser may keep them."""
IMAGE_MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".bmp": "image/bmp"}


class _NoCacheStatic(StaticFiles):
    """Static files the browser revalidates every time (an upgraded server never runs an old
    editor script against a new API)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def frame_jpeg(frame: Any, quality: int = FRAME_JPEG_QUALITY) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def add_web_routes(app: FastAPI, service: Any, *, owner: Callable, video_session: Callable,
                   image_session: Callable, session_json: Callable) -> None:
    """Registers the editor's page, files and routes on ``app`` (``create_app`` calls this with
    its own dependencies: the key check and the session look-ups)."""
    from ..errors import InvalidInput
    from .errors import ApiError

    if not (WEB_DIR / "index.html").is_file():  # a broken install: say so at / rather than 404
        raise RuntimeError(f"the web editor's files are missing: {WEB_DIR / 'index.html'}")

    @app.get("/", include_in_schema=False)
    async def editor_page():
        return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-cache"})

    app.mount("/web", _NoCacheStatic(directory=str(WEB_DIR)), name="web")

    @app.post("/v1/videos/demo", status_code=201, tags=["videos"])
    async def create_demo_video(who: str = Depends(owner)):
        """A video session of the bundled demo clip (CC0, 40 frames at 480x272); the answer also
        has ``demo``: its suggested first click and source."""
        import asyncio

        if not DEMO_CLIP.is_file():
            raise ApiError(404, "demo_missing", f"this install has no demo clip ({DEMO_CLIP})")
        tmp = service.data_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        path = tmp / f"demo-{secrets.token_hex(8)}"
        await asyncio.to_thread(shutil.copyfile, DEMO_CLIP, path)
        try:
            rec = await service.requests.run(lambda: service.create_video(who, video=path))
        finally:
            path.unlink(missing_ok=True)
        meta_file = DEMO_CLIP.with_suffix(".json")
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        return {**session_json(rec), "demo": {"name": DEMO_CLIP.name, "clicks": meta.get("clicks", []),
                                              "license": meta.get("license")}}

    @app.get("/v1/videos/{session_id}/frames/{frame_idx}/image", tags=["videos"],
             responses={200: {"content": {"image/jpeg": {}}}})
    async def frame_image(frame_idx: int, rec=Depends(video_session)):
        """Frame ``frame_idx`` as a JPEG (quality 90), as the session decodes it."""
        if not 0 <= frame_idx < (rec.num_frames or 0):
            raise ApiError(422, "invalid_input", f"frame_idx must be 0 <= frame_idx < {rec.num_frames}, "
                           f"got {frame_idx}")

        def read(_pred, state):
            try:
                return state.video[frame_idx]
            except InvalidInput as e:
                raise ApiError(422, "invalid_input", str(e)) from None
        frame = await service.requests.run(service.video_read, rec, read)
        data = await service.requests.run(frame_jpeg, frame)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": FRAME_CACHE})

    @app.get("/v1/images/{session_id}/image", tags=["images"],
             responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}})
    async def image_file(rec=Depends(image_session)):
        """The image of the session as stored (PNG, JPEG, WebP or BMP; rotated images as PNG)."""
        path = service.data_dir / rec.media
        media = IMAGE_MEDIA.get(path.suffix.lower(), "application/octet-stream")
        # changes with PUT .../image: revalidate by the file's ETag
        return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})
