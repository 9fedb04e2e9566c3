"""``ivos.Client``: the HTTP API of ``ivos serve`` with the in-process names, so embedding over
HTTP reads like embedding in-process::

    client = ivos.Client("http://127.0.0.1:8000", api_key=None)
    predictor = client.image_predictor()            # or image_predictor(session_id) to re-attach
    predictor.set_image(image)                      # (H, W, 3) uint8 RGB -> a server session
    result = predictor.add_click(x, y, positive=True)
    result.mask, result.timings                     # uint8 (H, W) {0, 1}; ivos.Timings
    predictor.undo(); predictor.reset(); predictor.predict(points, labels, mask_input=mask)
    predictor.session_id                            # keep it: the session survives restarts

    video = client.video_predictor()
    state = video.init_state("clip.mp4")            # a file, a folder of frames or (N, H, W, 3) frames
    video.add_new_points(state, 0, 1, [[x, y]], [1])
    for frame in video.propagate_in_video(state):   # runs as a server job; progress= callback
        frame.masks                                 # {obj_id: mask}
    video.export(state, "png-zip", "masks.zip")

Results are small frozen dataclasses with the library's field names (``RemoteClickResult``
as ``ClickResult``; ``RemoteFrameResult``; ``RemoteMultiFrameResult``; ``RemoteFrameSuggestion``).
Server refusals raise ``ServerError`` (status, code, message); the bad-input ones (400, 413,
415, 422) are also ``ivos.InvalidInput``, as in-process. 429 and 503 are retried after the
server's ``Retry-After`` (at most ``retries`` times).

Needs httpx and httpx-sse (the ``serve`` extra); importing ``ivos`` does not import this module.
"""
from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import InvalidInput, IvosError
from .formats.codec import decode_mask, png_bytes
from .formats.rle import rle_encode

BAD_INPUT = (400, 413, 415, 422)


class ServerError(IvosError):
    """An error answer of the server: ``status`` (HTTP), ``code`` (stable, e.g.
    ``session_busy``), ``message`` (for people), ``details`` (the error object)."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class ServerInvalidInput(ServerError, InvalidInput):
    """The server refused the input (400/413/415/422): ``except ivos.InvalidInput`` catches it."""


def server_error(r: Any) -> ServerError:
    """The ``ServerError`` (``ServerInvalidInput`` for bad input) of an error answer ``r`` (read)."""
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        err = {"code": "http_error", "message": r.text[:500]}
    cls = ServerInvalidInput if r.status_code in BAD_INPUT else ServerError
    return cls(r.status_code, err.get("code", "error"), err.get("message", ""), err)


def in_doubt(r: Any) -> bool:
    """Whether a 503 answer says its change may have been saved (``store_unavailable`` with
    ``in_doubt``: the server's database connection broke while committing)."""
    if r.status_code != 503:
        return False
    try:
        return bool(r.json()["error"].get("in_doubt"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


@dataclass(frozen=True)
class RemoteClickResult:
    """``ClickResult`` over HTTP. ``mask`` uint8 (H, W) {0,1}; ``probabilities`` float32 (H, W)
    quantised to 1/255 when asked for (``probabilities=True``), else None; ``box`` the view
    (x0, y0, width, height); ``timings`` ``ivos.Timings`` (server side, ms); ``backend``;
    ``clicks``: the session's clicks after this call (None for ``predict``)."""

    mask: np.ndarray
    probabilities: np.ndarray | None
    box: tuple[int, int, int, int]
    timings: Any
    backend: str
    clicks: int | None = None


@dataclass(frozen=True)
class RemoteFrameResult:
    """``FrameResult`` over HTTP: one object's mask on one frame; ``timings`` a dict (ms)."""

    frame_idx: int
    mask: np.ndarray
    confidence: float
    timings: dict
    source: str
    obj_id: int


@dataclass(frozen=True)
class RemoteMultiFrameResult:
    """``MultiFrameResult`` over HTTP: ``masks`` {obj_id: uint8 (H, W)}, ``confidence``,
    ``sources`` per object."""

    frame_idx: int
    masks: dict[int, np.ndarray]
    confidence: dict[int, float]
    sources: dict[int, str]

    @property
    def obj_ids(self) -> list[int]:
        return list(self.masks)


@dataclass(frozen=True)
class RemoteFrameSuggestion:
    """``FrameSuggestion`` over HTTP; ``scores`` float32 (N,), NaN where annotated."""

    frame_idx: int
    score: float
    scores: np.ndarray
    obj_id: int


@dataclass(frozen=True)
class RemoteVideoState:
    """The handle of a server video session (the state itself lives on the server)."""

    session_id: str
    num_frames: int
    width: int
    height: int
    fps: float


def _decode_mask(obj: dict | None) -> np.ndarray | None:
    return None if obj is None else decode_mask(obj)


def _mask_json(mask: Any, name: str) -> dict:
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.bool_):
        raise InvalidInput(f"{name} must be a uint8 or bool (H, W) array, got dtype {arr.dtype} shape {arr.shape}")
    return {"rle": rle_encode(arr)}


def _points(points: Any) -> list:
    """(N, 2) points as JSON lists (the server checks the shape and range)."""
    try:
        arr = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("points must be an (N, 2) array of (x, y) numbers") from None
    return [] if arr.size == 0 else arr.tolist()


def _labels(labels: Any) -> list:
    arr = np.asarray(labels)
    return [bool(v) if arr.dtype == np.bool_ else v.item() if hasattr(v, "item") else v for v in arr.ravel()]


class Client:
    """A connection to ``ivos serve`` at ``url`` (e.g. ``http://127.0.0.1:8000``).

    Args:
        url: the server's base URL.
        api_key: the bearer token, when the server has keys; sessions belong to it.
        timeout: seconds per request (uploads and exports included).
        retries: how often a 429 / 503 answer is retried after its ``Retry-After``.
        transport: an ``httpx.BaseTransport`` to send requests through instead of the network
            (e.g. ``ivos.serve.testing.InProcessApp.transport()``: the app in this process).
    """

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 120.0, retries: int = 5,
                 transport: Any = None):
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- plumbing ------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any):
        """One request; returns the httpx response of a 2xx answer, raises ``ServerError``
        otherwise (429/503 retried after ``Retry-After``; not a 503 whose change may have been
        saved, ``in_doubt``: repeating it could apply it twice)."""
        for attempt in range(self.retries + 1):
            r = self._http.request(method, path, **kwargs)
            if r.status_code in (429, 503) and attempt < self.retries and not in_doubt(r):
                time.sleep(min(30.0, float(r.headers.get("retry-after", "1") or 1)))
                continue
            break
        if not r.is_success:
            raise server_error(r)
        return r

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def health(self) -> dict:
        return self.json("GET", "/healthz")

    def ready(self) -> dict:
        return self.json("GET", "/readyz")

    def sessions(self, kind: str | None = None) -> list[dict]:
        """This key's sessions on the server (``session_id``, ``kind``, sizes, ``updated``),
        most recently changed first."""
        return self.json("GET", "/v1/sessions", params={} if kind is None else {"kind": kind})["sessions"]

    # ---- predictors ----------------------------------------------------------------------
    def image_predictor(self, session_id: str | None = None, *, probabilities: bool = False) -> "RemoteImagePredictor":
        """An ``ImagePredictor`` over HTTP: a new session at the first ``set_image``, or the
        existing ``session_id`` (after a server restart too)."""
        return RemoteImagePredictor(self, session_id, probabilities=probabilities)

    def video_predictor(self, session_id: str | None = None) -> "RemoteVideoPredictor":
        """A ``VideoPredictor`` over HTTP; with ``session_id``, ``.state`` is that session."""
        return RemoteVideoPredictor(self, session_id)


class RemoteImagePredictor:
    """``ImagePredictor``'s methods on a server session (``session_id``)."""

    def __init__(self, client: Client, session_id: str | None, *, probabilities: bool = False):
        self._client = client
        self._probabilities = probabilities
        self.session_id = session_id
        self._size: tuple[int, int] | None = None
        if session_id is not None:
            info = client.json("GET", f"/v1/images/{session_id}")
            self._size = (info["height"], info["width"])

    def _path(self, tail: str = "") -> str:
        if self.session_id is None:
            raise InvalidInput("no image: call set_image(image) first")
        return f"/v1/images/{self.session_id}{tail}"

    def _result(self, body: dict) -> RemoteClickResult:
        from .image.click_pipeline import Timings

        prob = None
        if "probabilities_png" in body:
            from PIL import Image

            q = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["probabilities_png"]))))
            prob = q.astype(np.float32) / 255.0
        try:
            timings = Timings(**body["timings"])
        except TypeError:  # a server of another version: keep its fields as they are
            timings = dict(body["timings"])
        return RemoteClickResult(_decode_mask(body["mask"]), prob, tuple(body["box"]), timings, body["backend"],
                                 body.get("clicks"))

    def set_image(self, image: np.ndarray) -> None:
        """Uploads the (H, W, 3) uint8 RGB image (PNG, lossless): a new session the first time,
        else the session's image is replaced and its clicks forgotten."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InvalidInput("image must be a numpy array of shape (H, W, 3) and dtype uint8")
        files = {"image": ("image.png", png_bytes(image), "image/png")}
        if self.session_id is None:
            info = self._client.json("POST", "/v1/images", files=files)
            self.session_id = info["session_id"]
        else:
            info = self._client.json("PUT", self._path("/image"), files=files)
        self._size = (info["height"], info["width"])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the session's image."""
        self._path()
        return self._size

    def _params(self) -> dict:
        return {"probabilities": "true"} if self._probabilities else {}

    def add_click(self, x: float, y: float, positive: bool) -> RemoteClickResult:
        body = {"x": x.item() if hasattr(x, "item") else x, "y": y.item() if hasattr(y, "item") else y,
                "positive": positive.item() if hasattr(positive, "item") else positive}
        return self._result(self._client.json("POST", self._path("/clicks"), json=body, params=self._params()))

    def undo(self) -> RemoteClickResult | None:
        body = self._client.json("POST", self._path("/undo"))
        return None if body.get("mask") is None else self._result(body)

    def reset(self) -> None:
        self._client.json("POST", self._path("/reset"))

    @property
    def result(self) -> np.ndarray | None:
        """The session's current mask (uint8 (H, W)), None before any click."""
        return _decode_mask(self._client.json("GET", self._path())["mask"])

    @property
    def clicks(self) -> list[tuple[float, float, bool]]:
        return [(c["x"], c["y"], c["positive"]) for c in self._client.json("GET", self._path())["clicks"]]

    def predict(self, point_coords: Any, point_labels: Any, mask_input: np.ndarray | None = None) -> RemoteClickResult:
        """Stateless prediction on the session's image (the clicks are untouched)."""
        body = {"points": _points(point_coords), "labels": _labels(point_labels),
                "mask_input": None if mask_input is None else _mask_json(mask_input, "mask_input")}
        return self._result(self._client.json("POST", self._path("/predict"), json=body, params=self._params()))

    def delete(self) -> None:
        """Deletes the session on the server (its image, clicks and masks)."""
        self._client.request("DELETE", self._path())
        self.session_id = None


class RemoteVideoPredictor:
    """``VideoPredictor``'s methods on server sessions; ``state`` arguments are the
    ``RemoteVideoState`` handles of ``init_state`` (or ``.state`` when re-attached)."""

    def __init__(self, client: Client, session_id: str | None):
        self._client = client
        self.state: RemoteVideoState | None = None
        if session_id is not None:
            self.state = self._handle(client.json("GET", f"/v1/videos/{session_id}"))

    @property
    def session_id(self) -> str | None:
        return None if self.state is None else self.state.session_id

    @staticmethod
    def _handle(info: dict) -> RemoteVideoState:
        return RemoteVideoState(info["session_id"], info["num_frames"], info["width"], info["height"], info["fps"])

    @staticmethod
    def _sid(state: Any) -> str:
        if not isinstance(state, RemoteVideoState):
            raise InvalidInput(f"state must be the RemoteVideoState of init_state, got {type(state).__name__}")
        return state.session_id

    def init_state(self, video: Any, *, fps: float | None = None) -> RemoteVideoState:
        """Uploads ``video``: a video file path, a folder of frames (natural name order) or
        (N, H, W, 3) uint8 frames (sent as PNG). Returns the new session's handle."""
        data = {} if fps is None else {"fps": str(fps)}
        if isinstance(video, (str, Path)) and Path(video).is_file():
            with open(video, "rb") as f:
                info = self._client.json("POST", "/v1/videos", files={"video": (Path(video).name, f)}, data=data)
        else:
            if isinstance(video, (str, Path)) and Path(video).is_dir():
                from .video.frames import IMAGE_SUFFIXES, natural_key

                paths = sorted((p for p in Path(video).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                               key=lambda p: natural_key(p.name))
                files = [("frames", (p.name, p.read_bytes())) for p in paths]
            elif isinstance(video, np.ndarray) and video.ndim == 4 and video.shape[-1] == 3 and video.dtype == np.uint8:
                files = [("frames", (f"{i:05d}.png", png_bytes(f), "image/png")) for i, f in enumerate(video)]
            else:
                raise InvalidInput("video must be a video file, a folder of frames or (N, H, W, 3) uint8 frames")
            info = self._client.json("POST", "/v1/videos", files=files, data=data)
        self.state = self._handle(info)
        return self.state

    def _frame(self, body: dict | None) -> RemoteFrameResult | None:
        if body is None:
            return None
        return RemoteFrameResult(body["frame_idx"], _decode_mask(body["mask"]), body["confidence"], body["timings"],
                                 body["source"], body["obj_id"])

    def _post(self, state: Any, tail: str, body: dict) -> Any:
        return self._client.json("POST", f"/v1/videos/{self._sid(state)}{tail}", json=body)

    def add_new_points(self, state: RemoteVideoState, frame_idx: int, obj_id: int, points: Any, labels: Any, *,
                       clear_old_points: bool = False) -> RemoteFrameResult:
        return self._frame(self._post(state, "/points", {"frame_idx": int(frame_idx), "obj_id": int(obj_id),
                                                         "points": _points(points), "labels": _labels(labels),
                                                         "clear_old_points": bool(clear_old_points)}))

    def add_new_mask(self, state: RemoteVideoState, frame_idx: int, obj_id: int, mask: Any) -> RemoteFrameResult:
        return self._frame(self._post(state, "/mask", {"frame_idx": int(frame_idx), "obj_id": int(obj_id),
                                                       "mask": _mask_json(mask, "mask")}))

    def refine(self, state: RemoteVideoState, frame_idx: int, obj_id: int, points: Any, labels: Any) -> RemoteFrameResult:
        return self._frame(self._post(state, "/refine", {"frame_idx": int(frame_idx), "obj_id": int(obj_id),
                                                         "points": _points(points), "labels": _labels(labels)}))

    def undo(self, state: RemoteVideoState, frame_idx: int, obj_id: int) -> RemoteFrameResult | None:
        return self._frame(self._post(state, "/undo", {"frame_idx": int(frame_idx), "obj_id": int(obj_id)})["result"])

    def remove_object(self, state: RemoteVideoState, obj_id: int) -> None:
        self._client.request("DELETE", f"/v1/videos/{self._sid(state)}/objects/{int(obj_id)}")

    def reset_state(self, state: RemoteVideoState) -> None:
        self._post(state, "/reset", {})

    def info(self, state: RemoteVideoState) -> dict:
        """The session as the server reports it: objects, clicks, annotated frames, last job."""
        return self._client.json("GET", f"/v1/videos/{self._sid(state)}")

    def start_propagation(self, state: RemoteVideoState, *, start_frame_idx: int | None = None,
                          finetune: bool = True) -> dict:
        """Starts the propagation job and returns it at once (``job_id``, ``status``)."""
        return self._post(state, "/propagate", {"start_frame_idx": start_frame_idx, "finetune": bool(finetune)})

    def events(self, state: RemoteVideoState, job_id: str) -> Iterator[dict]:
        """The job's progress events (Server-Sent Events) until it ends; the last has the final
        ``status``."""
        from httpx_sse import connect_sse

        path = f"/v1/videos/{self._sid(state)}/jobs/{job_id}/events"
        with connect_sse(self._client._http, "GET", path, timeout=None) as source:
            if not source.response.is_success:
                source.response.read()
                raise server_error(source.response)
            for event in source.iter_sse():
                yield event.json()
                if event.event == "end":
                    return

    def cancel(self, state: RemoteVideoState, job_id: str) -> dict:
        return self._post(state, f"/jobs/{job_id}/cancel", {})

    def propagate_in_video(self, state: RemoteVideoState, *, start_frame_idx: int | None = None,
                           finetune: bool = True,
                           progress: Callable[[dict], None] | None = None) -> Iterator[RemoteMultiFrameResult]:
        """Runs propagation as a server job, calling ``progress(event)`` as it advances, then
        yields one ``RemoteMultiFrameResult`` per frame in the library's order (forward from the
        start, then backward when no start was given). Closing the generator early cancels a
        job still running. ``ServerError`` when the job fails or is cancelled elsewhere."""
        job = self.start_propagation(state, start_frame_idx=start_frame_idx, finetune=finetune)
        final = None
        try:
            for event in self.events(state, job["job_id"]):
                if progress is not None:
                    progress(event)
                final = event
        except BaseException:
            self.cancel(state, job["job_id"])
            raise
        if final is None or final["status"] != "done":
            status = None if final is None else final["status"]
            raise ServerError(409, f"job_{status}", f"propagation job {job['job_id']} ended {status}: "
                              f"{None if final is None else final.get('error')}")
        frames = {f["frame_idx"]: f for f in self._client.json("GET", f"/v1/videos/{self._sid(state)}/masks")["frames"]}
        n = state.num_frames
        start = min((i for i, f in frames.items() if "annotated" in f["sources"].values()), default=0) \
            if start_frame_idx is None else start_frame_idx
        order = list(range(start, n)) + (list(range(start - 1, -1, -1)) if start_frame_idx is None else [])
        for i in order:
            f = frames.get(i)
            if f is None:
                continue
            yield RemoteMultiFrameResult(i, {int(k): _decode_mask({"rle": v}) for k, v in f["masks"].items()},
                                         {int(k): v for k, v in f["confidence"].items()},
                                         {int(k): v for k, v in f["sources"].items()})

    def object_masks(self, state: RemoteVideoState, frame_idx: int) -> dict[int, np.ndarray]:
        body = self._client.json("GET", f"/v1/videos/{self._sid(state)}/frames/{int(frame_idx)}/masks")
        return {int(k): _decode_mask(v) for k, v in body["masks"].items()}

    def masks(self, state: RemoteVideoState, obj_id: int | None = None) -> Iterator[tuple[int, Any]]:
        """As ``VideoPredictor.masks``: (frame_idx, {obj_id: mask}) or, with ``obj_id``,
        (frame_idx, that object's mask)."""
        frames = self._client.json("GET", f"/v1/videos/{self._sid(state)}/masks")["frames"]
        for f in frames:
            per_object = {int(k): _decode_mask({"rle": v}) for k, v in f["masks"].items()}
            if obj_id is None:
                yield f["frame_idx"], per_object
            else:
                yield f["frame_idx"], per_object.get(int(obj_id), np.zeros((state.height, state.width), np.uint8))

    def suggest_frame(self, state: RemoteVideoState, obj_id: int | None = None) -> RemoteFrameSuggestion:
        params = {} if obj_id is None else {"obj_id": int(obj_id)}
        body = self._client.json("GET", f"/v1/videos/{self._sid(state)}/suggest", params=params)
        scores = np.array([np.nan if v is None else v for v in body["scores"]], np.float32)
        return RemoteFrameSuggestion(body["frame_idx"], body["score"], scores, body["obj_id"])

    def export(self, state: RemoteVideoState, format: str, path: str | Path) -> Path:
        """Downloads export ``format`` (png-zip, coco, rle, sticker) to ``path``."""
        r = self._client.request("GET", f"/v1/videos/{self._sid(state)}/export", params={"format": format})
        out = Path(path)
        out.write_bytes(r.content)
        return out

    def delete(self, state: RemoteVideoState) -> None:
        self._client.request("DELETE", f"/v1/videos/{self._sid(state)}")
