"""``ivos serve`` as a Label Studio ML backend: the protocol's logic, HTTP-free (the routes are
``ivos.serve.routes.label_studio``).

Label Studio talks to an ML backend with ``GET /health``, ``POST /setup`` (the project's
labelling config, its URL and an access token, sent whenever Label Studio looks at the
backend) and ``POST /predict`` (tasks; for interactive "smart" annotation the user's keypoints
or rectangle in ``params.context``). The reply to an interactive predict is a ``brushlabels``
result in Label Studio's brush RLE (``ivos.formats.brush_rle``).

How a task's clicks become one ivos image session: the first request on a task downloads its
image from Label Studio (with the project's token) into a new image session; Label Studio then
sends all the task's smart keypoints with every request, so each request is compared with the
clicks the session holds: one more keypoint is one ``add_click`` (one click's cost), one less
is an ``undo``, anything else starts the clicks over. A rectangle is a box prompt: a positive
click at its centre, predicted in a view of the box and its surroundings
(``ImagePredictor.predict(view=)``), the mask cut to the box.

Where the project's Label Studio is: ``/setup``'s ``hostname`` and ``access_token`` (kept per
project in the session blobs, ``ProjectBook``, so a restart and every other server of the
store see them), else
``$LABEL_STUDIO_URL`` and ``$LABEL_STUDIO_API_KEY``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import numpy as np

from ..formats.brush_rle import mask_to_brush_rle
from ..image.geometry import Box
from .errors import ApiError
from .service import Service
from .store import SessionRecord

log = logging.getLogger("ivos.serve")

BOX_MARGIN = 1.0
"""A rectangle prompt's view is the rectangle grown by this fraction of its size on each side
(inside the image): the network sees the object with its surroundings, as its training views
show objects. Chosen on the held-aside everyday photos (``python -m ivos.bench.box_prompt``,
benchmarks/results/box_prompt.md)."""
MAX_TASKS = 1024
"""Tasks whose image session is remembered (least recently used forgotten first)."""
FETCH_TIMEOUT_S = 30.0


def box_view(box: tuple[float, float, float, float], margin: float) -> Box:
    """The view of a box prompt: ``box`` (x0, y0, x1, y1, original pixels) grown by ``margin``
    of its size on each side. Not clipped to the image: outside it the network sees padding,
    and the object stays in the middle of its view at the scale of its training views (clipped
    views score lower, benchmarks/results/box_prompt.md)."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    vx0, vy0 = int(np.floor(x0 - mx)), int(np.floor(y0 - my))
    return Box(vx0, vy0, max(1, int(np.ceil(x1 + mx)) - vx0), max(1, int(np.ceil(y1 + my)) - vy0))


def bad_request(message: str, status: int = 422, code: str = "invalid_label_studio_request") -> ApiError:
    """A refused Label Studio request (the ivos error contract; Label Studio reports a backend's
    non-2xx answer to its caller as an ``errors`` entry)."""
    return ApiError(status, code, message)


@dataclass(frozen=True)
class LabelConfig:
    """What the backend needs of a project's labelling config: the ``Image`` tag (its ``name``
    and the task data key of its ``value="$key"``) and the ``BrushLabels`` control on it
    (``name``, label values)."""

    image_name: str
    image_key: str
    brush_name: str
    brush_labels: tuple[str, ...]

    @staticmethod
    def parse(xml: Any) -> "LabelConfig":
        """The config's Image + BrushLabels pair; 422 saying what is missing."""
        if not isinstance(xml, str) or not xml.strip():
            raise bad_request("the labelling config (schema / label_config) is missing: expected Label Studio's "
                              "<View> XML with an <Image> and a <BrushLabels> on it")
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as e:
            raise bad_request(f"the labelling config is not XML: {e}") from None
        images = {el.get("name"): el.get("value", "") for el in root.iter() if el.tag == "Image" and el.get("name")}
        if not images:
            raise bad_request("the labelling config has no <Image name=... value=\"$...\"> tag: ivos segments images")
        brushes = [el for el in root.iter() if el.tag == "BrushLabels"]
        if not brushes:
            raise bad_request("the labelling config has no <BrushLabels> control: ivos answers with brush masks; add "
                              f"<BrushLabels name=\"mask\" toName=\"{next(iter(images))}\"> with a <Label>")
        brush = next((b for b in brushes if b.get("toName") in images), None)
        if brush is None:
            raise bad_request(f"no <BrushLabels> control points at an <Image>: toName is "
                              f"{[b.get('toName') for b in brushes]}, the images are {sorted(images)}")
        value = images[brush.get("toName")]
        if not value.startswith("$") or len(value) < 2:
            raise bad_request(f"the <Image name=\"{brush.get('toName')}\"> value must name a task field "
                              f"(value=\"$image\"), got {value!r}")
        labels = tuple(el.get("value") for el in brush.iter("Label") if el.get("value"))
        return LabelConfig(brush.get("toName"), value[1:], brush.get("name"), labels)


@dataclass(frozen=True)
class Prompt:
    """An interactive request's prompt in original pixels: keypoints ``points`` (N, 2) (x, y)
    with ``positive`` (N,), or a rectangle ``box`` (x0, y0, x1, y1); ``label`` the label the
    user chose (None: none named)."""

    points: tuple[tuple[float, float], ...]
    positive: tuple[bool, ...]
    box: tuple[float, float, float, float] | None
    label: str | None

    @staticmethod
    def from_context(context: Any, width: int, height: int) -> "Prompt | None":
        """The prompt of ``params.context`` (``{"result": [keypointlabels / rectanglelabels
        items]}``, coordinates in percent of the image) on a ``width`` x ``height`` image;
        None when there is none (no interactive context); 422 naming what is malformed."""
        if context is None or context == {}:
            return None
        if not isinstance(context, dict) or not isinstance(context.get("result", []), list):
            raise bad_request(f"context must be {{\"result\": [keypoint or rectangle items]}}, got {str(context)[:200]}")
        items = context.get("result", [])
        if not items:
            return None
        points, positive, box, label = [], [], None, None
        for i, item in enumerate(items):
            where = f"context.result[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
                raise bad_request(f"{where} must be an object with a 'value' object")
            kind, value = item.get("type"), item["value"]
            if kind == "keypointlabels":
                x, y = _percent(value, "x", where), _percent(value, "y", where)
                points.append((_inside(x * width / 100.0, width), _inside(y * height / 100.0, height)))
                is_positive = item.get("is_positive", True)
                if not isinstance(is_positive, bool):
                    raise bad_request(f"{where}.is_positive must be true or false, got {is_positive!r}")
                positive.append(is_positive)
                label = label or _label(value, "keypointlabels")
            elif kind == "rectanglelabels":
                if box is not None:
                    raise bad_request(f"{where}: one rectangle per request, got a second")
                x, y = _percent(value, "x", where), _percent(value, "y", where)
                w, h = _percent(value, "width", where), _percent(value, "height", where)
                if w <= 0 or h <= 0:
                    raise bad_request(f"{where}: the rectangle has no area (width {w}%, height {h}%)")
                box = (x * width / 100.0, y * height / 100.0, min(x + w, 100.0) * width / 100.0,
                       min(y + h, 100.0) * height / 100.0)
                label = label or _label(value, "rectanglelabels")
            else:
                raise bad_request(f"{where}.type is {kind!r}: ivos takes keypointlabels (clicks) and "
                                  "rectanglelabels (a box)")
        return Prompt(tuple(points), tuple(positive), box, label)


def _percent(value: dict, key: str, where: str) -> float:
    v = value.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 100.0:
        raise bad_request(f"{where}.value.{key} must be a number in [0, 100] (percent of the image), got {v!r}")
    return float(v)


def _inside(v: float, limit: int) -> float:
    """A coordinate from a percentage, kept inside the image (100% is the far edge: the last pixel)."""
    return min(max(v, 0.0), limit - 0.5)


def _label(value: dict, key: str) -> str | None:
    labels = value.get(key) or value.get("labels") or []
    return labels[0] if isinstance(labels, list) and labels and isinstance(labels[0], str) else None


@dataclass(frozen=True)
class Project:
    """Where a project's Label Studio is and how to read its images."""

    hostname: str
    token: str | None


class ProjectBook:
    """Projects' Label Studio address and token from ``/setup``, kept in the service's blob
    store (``ivos.serve.blobs``: the data dir, or the PostgreSQL database with ``--store``), so
    that every server of a store (Ray replicas on other machines, a restarted server) reads a
    project's images. A project is a blob ``label-studio/projects/<project>/<time>-<random>.json``
    (blobs are written once: a change is a new blob, the older ones deleted), read when a
    request needs a project this process has not seen within ``FRESH_S``. On a local disk the
    file is mode 0600 (it holds a token). ``legacy``: a ``projects.json`` of an earlier ivos,
    copied in at start."""

    PREFIX = "label-studio/projects/"
    FRESH_S = 10.0
    """How long a project read from the blobs is used before it is read again (another server
    may have had a newer /setup)."""

    def __init__(self, blobs: Any, legacy: Path | None = None):
        self.blobs = blobs
        self._lock = threading.Lock()
        self._projects: dict[str, tuple[Project | None, float]] = {}
        if legacy is not None and legacy.is_file():
            try:
                for k, v in json.loads(legacy.read_text()).items():
                    if not self.blobs.list(self._prefix(k)):
                        self.remember(k, v["hostname"], v.get("token"))
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("Label Studio projects of %s not copied: %s", legacy, e)

    def _prefix(self, project: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(project)) or "_"
        return f"{self.PREFIX}{safe}/"

    def remember(self, project: str, hostname: str, token: str | None) -> None:
        found = self._read(project)
        if found == Project(hostname, token):
            return  # Label Studio calls /setup often: write only what changed
        import secrets
        import time

        prefix = self._prefix(project)
        older = self.blobs.list(prefix)
        key = f"{prefix}{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        self.blobs.put(key, json.dumps({"hostname": hostname, "token": token}).encode())
        if getattr(self.blobs, "local", False):
            os.chmod(self.blobs.path(key), 0o600)
        for blob in older:
            self.blobs.delete(blob.key)
        with self._lock:
            self._projects[project] = (Project(hostname, token), time.monotonic())

    def _read(self, project: str) -> Project | None:
        """The project's newest blob (None when there is none)."""
        import time

        with self._lock:
            cached = self._projects.get(project)
        if cached is not None and time.monotonic() - cached[1] < self.FRESH_S:
            return cached[0]
        found = None
        for blob in reversed(self.blobs.list(self._prefix(project))):  # newest first (keys by time)
            try:
                raw = json.loads(self.blobs.get(blob.key))
                found = Project(raw["hostname"], raw.get("token"))
                break
            except (KeyError, ValueError, TypeError, OSError):  # deleted meanwhile by a newer /setup
                continue
        with self._lock:
            self._projects[project] = (found, time.monotonic())
        return found

    def get(self, project: str) -> Project | None:
        """The project's Label Studio, else ``$LABEL_STUDIO_URL`` / ``$LABEL_STUDIO_API_KEY``."""
        found = self._read(project)
        if found is not None:
            return found
        url = os.environ.get("LABEL_STUDIO_URL")
        return Project(url, os.environ.get("LABEL_STUDIO_API_KEY")) if url else None


def project_id(value: Any) -> str:
    """Label Studio's ``project`` field ("<id>.<created-at>") as the project id string."""
    return str(value).split(".")[0] if value is not None else ""


def fetch_image(url: str, project: Project | None) -> bytes:
    """The bytes of a task's image URL: relative URLs (``/data/upload/...``) on the project's
    Label Studio, with its token. 502 / 401 / 404 naming the URL and what to check."""
    import httpx

    if not isinstance(url, str) or not url:
        raise bad_request(f"the task has no image URL (got {url!r})")
    if urlparse(url).scheme in ("http", "https"):
        absolute = url
    elif url.startswith("/"):
        if project is None or not project.hostname:
            raise bad_request(f"cannot fetch the task image {url}: Label Studio's address is unknown (it has not called "
                              "/setup since this server started; set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)", 502,
                              "label_studio_unknown")
        absolute = urljoin(project.hostname.rstrip("/") + "/", url.lstrip("/"))
    else:
        raise bad_request(f"the task image {url!r} is neither an http(s) URL nor a Label Studio path (/data/...)")
    same_host = project is not None and project.hostname and urlparse(absolute).netloc == urlparse(project.hostname).netloc
    headers = {"Authorization": f"Token {project.token}"} if same_host and project.token else {}
    try:
        r = httpx.get(absolute, headers=headers, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as e:
        raise bad_request(f"cannot reach Label Studio for the task image {url}: {type(e).__name__}: {e}", 502,
                          "label_studio_unreachable") from None
    if r.status_code in (401, 403):
        raise bad_request(f"Label Studio refused the task image {url} (HTTP {r.status_code}): the access token is wrong "
                          "or lacks access (the project's /setup token, or LABEL_STUDIO_API_KEY)", 502,
                          "label_studio_auth")
    if r.status_code == 404:
        raise bad_request(f"the task image {url} does not exist on Label Studio (HTTP 404)", 404, "task_image_not_found")
    if r.status_code >= 400:
        raise bad_request(f"Label Studio answered HTTP {r.status_code} for the task image {url}", 502,
                          "label_studio_error")
    return r.content


@dataclass
class TaskSession:
    """A task's ivos image session and the clicks it holds."""

    session_id: str
    image_url: str


class LabelStudioBackend:
    """The ML backend over a ``Service``: ``setup`` and ``predict`` (see the module docstring)."""

    def __init__(self, service: Service):
        self.service = service
        self.projects = ProjectBook(service.blobs, legacy=service.data_dir / "label-studio" / "projects.json")
        self._tasks: OrderedDict[tuple[str, str, int], TaskSession] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        bundle = getattr(self.service.click_model, "bundle", None)
        return f"ivos-{bundle.name}@{bundle.version}" if bundle is not None else "ivos"

    def setup(self, body: dict) -> dict:
        """``/setup``: checks the labelling config (422 naming what is missing) and remembers
        the project's Label Studio address and token."""
        LabelConfig.parse(body.get("schema"))
        hostname = body.get("hostname")
        if isinstance(hostname, str) and hostname:
            token = body.get("access_token")
            self.projects.remember(project_id(body.get("project")), hostname, token if isinstance(token, str) else None)
        return {"model_version": self.model_version}

    def predict(self, owner: str, body: dict) -> dict:
        """``/predict``: for an interactive context, the task's brushlabels result; without one,
        no prediction (``{"results": []}``: the backend is interactive only)."""
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
            raise bad_request("tasks must be a non-empty list of Label Studio task objects")
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        context = params.get("context", body.get("context"))
        if context is None or context == {} or (isinstance(context, dict) and not context.get("result")):
            return {"results": []}
        if len(tasks) != 1:
            raise bad_request(f"an interactive request names one task, got {len(tasks)}")
        config = LabelConfig.parse(body.get("label_config"))
        task = tasks[0]
        project = project_id(body.get("project") or task.get("project"))
        url = (task.get("data") or {}).get(config.image_key)
        Prompt.from_context(context, 100, 100)  # a malformed context is refused before any download
        rec = self._session(owner, project, task, url)
        prompt = Prompt.from_context(context, rec.width, rec.height)
        if prompt is None:
            return {"results": []}
        result = self._run(rec, prompt)
        return {"results": [self._brush_result(config, prompt, result, rec)]}

    # ---- the task's image session --------------------------------------------------------
    def _session(self, owner: str, project: str, task: dict, url: Any) -> SessionRecord:
        task_id = task.get("id")
        if isinstance(task_id, bool) or not isinstance(task_id, int):
            raise bad_request(f"the task has no integer id (got {task_id!r})")
        key = (owner, project, task_id)
        with self._lock:
            known = self._tasks.get(key)
            if known is not None:
                self._tasks.move_to_end(key)
        if known is not None and known.image_url == url:
            try:
                return self.service.session(known.session_id, owner, "image")
            except ApiError:
                pass  # deleted or expired: a new one below
        rec = self.service.create_image(owner, fetch_image(url, self.projects.get(project)))
        with self._lock:
            self._tasks[key] = TaskSession(rec.id, url)
            while len(self._tasks) > MAX_TASKS:
                self._tasks.popitem(last=False)
        log.info("ivos serve: Label Studio project %s task %s -> image session %s", project, task_id, rec.id)
        return rec

    def _run(self, rec: SessionRecord, prompt: Prompt):
        """The prompt on the session: a box is a stateless prediction in the box's view; clicks
        bring the session's clicks to the prompt's with as few steps as there are changes."""
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            points = [((x0 + x1) / 2, (y0 + y1) / 2), *prompt.points]
            labels = [1, *[int(p) for p in prompt.positive]]
            result = self.service.image_predict(rec, points, labels, None,
                                                view=box_view(prompt.box, BOX_MARGIN))
            inside = np.zeros_like(result.mask)
            inside[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = 1
            return replace(result, mask=result.mask * inside)  # the object is inside its box
        wanted = [(x, y, p) for (x, y), p in zip(prompt.points, prompt.positive)]
        held, _ = self.service.image_state(rec)
        held = [(float(x), float(y), bool(p)) for x, y, p in held]
        if wanted == held:  # the same keypoints again (e.g. a label changed): the mask they have
            return self.service.image_result(rec)
        result = None
        if held == wanted[:len(held)]:
            for x, y, p in wanted[len(held):]:
                result, _ = self.service.image_click(rec, x, y, p)
        elif wanted == held[:len(wanted)]:
            for _ in range(len(held) - len(wanted)):
                result, _ = self.service.image_undo(rec)
        else:
            self.service.image_reset(rec)
            for x, y, p in wanted:
                result, _ = self.service.image_click(rec, x, y, p)
        return result

    def _brush_result(self, config: LabelConfig, prompt: Prompt, result: Any, rec: SessionRecord) -> dict:
        mask = np.asarray(result.mask)
        label = prompt.label if prompt.label in config.brush_labels else (
            config.brush_labels[0] if config.brush_labels else (prompt.label or "Object"))
        inside = result.probabilities[mask > 0]
        score = float(inside.mean()) if inside.size else 0.0
        return {"result": [{"from_name": config.brush_name, "to_name": config.image_name, "type": "brushlabels",
                            "original_width": rec.width, "original_height": rec.height, "image_rotation": 0,
                            "value": {"format": "rle", "rle": mask_to_brush_rle(mask), "brushlabels": [label]},
                            "score": score, "readonly": False}],
                "score": score, "model_version": self.model_version}
