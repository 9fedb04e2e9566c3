"""``ivos serve`` as the ML backend of a real Label Studio (``scripts/setup_label_studio.sh``
installs it into ``.venv-label-studio``; the first test here runs it when Label Studio is
missing, about 1-4 minutes once): a project with Image + BrushLabels +
smart KeyPointLabels + RectangleLabels, GrabCut images imported as tasks, ivos connected as
its interactive backend through Label Studio's API (with basic auth carrying an ivos API key),
interactive requests sent through Label Studio's own endpoint, and the brush RLE it returns
decoded and compared with the in-process ``ImagePredictor`` for the same clicks.

Runs once per module (Label Studio's first start migrates its database: 30-60 s here)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="ivos serve needs the serve extra (pip install 'ivos[serve]')")
pytest.importorskip("httpx", reason="needs httpx (pip install 'ivos[serve]')")

import ivos  # noqa: E402
from ivos.formats.brush_rle import brush_rle_to_mask  # noqa: E402
from ivos.mask_metrics import iou  # noqa: E402
from ivos.serve.label_studio import BOX_MARGIN, box_view  # noqa: E402
from ivos.serve.testing import LABEL_STUDIO_CONFIG, LABEL_STUDIO_VENV, LabelStudioProcess, ServerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ivos.datasets_root() or ROOT.parent / "shared" / "datasets"
IMAGES = ("banana1", "teddy")  # GrabCut images (data_GT/<name>.*, boundary_GT/<name>.bmp)
API_KEY = "ivos-label-studio-test-key"

pytestmark = pytest.mark.skipif(not (DATA / "GrabCut").is_dir(), reason=f"GrabCut not found under {DATA}")


@pytest.fixture(scope="module")
def label_studio_installed() -> None:
    """``scripts/setup_label_studio.sh`` (a no-op once done); skips saying why when it cannot
    install (no network to PyPI)."""
    import subprocess

    if (LABEL_STUDIO_VENV / "bin" / "label-studio").is_file():
        return
    done = subprocess.run(["bash", str(ROOT / "scripts" / "setup_label_studio.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"Label Studio could not be installed (scripts/setup_label_studio.sh): {done.stderr[-500:]}")


def grabcut(name: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """(image file, (H, W, 3) uint8 RGB, (H, W) bool object) of a GrabCut image."""
    from ivos.evaluation.datasets import grabcut as grabcut_set

    data = grabcut_set(DATA)
    i = [n for n in data.names].index(name)
    sample = data[i]
    return data._entries[i][1], sample.image, sample.gt


def inner_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the object pixel farthest from its edge: where a person clicks first."""
    from scipy.ndimage import distance_transform_edt

    y, x = np.unravel_index(np.argmax(distance_transform_edt(mask)), mask.shape)
    return int(x), int(y)


@pytest.fixture(scope="module")
def servers(label_studio_installed, tmp_path_factory, tiny_bundles):
    """(Label Studio, ivos serve with an API key), both on loopback."""
    root = tmp_path_factory.mktemp("label-studio")
    t0 = time.monotonic()
    with LabelStudioProcess(root / "ls-data") as ls:
        print(f"Label Studio healthy after {time.monotonic() - t0:.0f} s")
        server = ServerProcess(root / "ivos-data", ["--model", "ivos-lite0", "--osvos-model", str(tiny_bundles["osvos"]),
                                                    "--threads", "1", "--api-key", API_KEY]).start()
        try:
            yield ls, server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def project(servers):
    """(project id, {GrabCut name: task id}, ML backend id): the project, its tasks and ivos as
    its interactive backend (basic auth: any user, the ivos API key as the password)."""
    ls, server = servers
    r = ls.api("POST", "/api/projects", json={"title": "ivos e2e", "label_config": LABEL_STUDIO_CONFIG})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    files = {f"file{i}": (f"{name}.png", _png(grabcut(name)[1]), "image/png") for i, name in enumerate(IMAGES)}
    r = ls.api("POST", f"/api/projects/{pid}/import", files=files)
    assert r.status_code == 201 and r.json()["task_count"] == len(IMAGES), r.text
    tasks = ls.api("GET", f"/api/tasks?project={pid}").json()["tasks"]
    by_name = {next(n for n in IMAGES if t["data"]["image"].endswith(f"-{n}.png")): t["id"] for t in tasks}
    r = ls.api("POST", "/api/ml", json={"url": f"{server.url}/label-studio", "project": pid, "is_interactive": True,
                                        "title": "ivos", "auth_method": "BASIC_AUTH", "basic_auth_user": "label-studio",
                                        "basic_auth_pass": API_KEY})
    assert r.status_code == 201, r.text
    assert r.json()["readable_state"] == "Connected", r.json()
    return pid, by_name, r.json()["id"]


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def keypoint(x: float, y: float, w: int, h: int, positive: bool = True) -> dict:
    """A smart keypoint as Label Studio's frontend sends it (percent of the image)."""
    return {"type": "keypointlabels", "from_name": "click", "to_name": "image", "original_width": w,
            "original_height": h, "image_rotation": 0, "is_positive": positive,
            "value": {"x": 100.0 * x / w, "y": 100.0 * y / h, "width": 0.6, "keypointlabels": ["Object"]}}


def interactive(ls, ml_id: int, task: int, items: list[dict]) -> dict:
    """Label Studio's own interactive endpoint (what its labelling page calls)."""
    r = ls.api("POST", f"/api/ml/{ml_id}/interactive-annotating", json={"task": task, "context": {"result": items}})
    assert r.status_code == 200, r.text
    return r.json()


def decoded(reply: dict) -> tuple[np.ndarray, dict]:
    assert "errors" not in reply, reply
    (item,) = reply["data"]["result"]
    assert item["type"] == "brushlabels" and item["from_name"] == "mask" and item["to_name"] == "image"
    assert item["value"]["brushlabels"] == ["Object"] and 0.0 < item["score"] <= 1.0
    mask = brush_rle_to_mask(item["value"]["rle"], item["original_height"], item["original_width"])
    return mask, item


def test_clicks_through_label_studio_give_the_in_process_masks(servers, project):
    ls, _ = servers
    _, tasks, ml_id = project
    _, image, gt = grabcut("banana1")
    h, w = gt.shape
    local = ivos.ImagePredictor(ivos.load("ivos-lite0", threads=1))
    local.set_image(image)
    x, y = inner_point(gt)
    first = [keypoint(x, y, w, h)]
    mask, item = decoded(interactive(ls, ml_id, tasks["banana1"], first))
    assert (item["original_width"], item["original_height"]) == (w, h)
    expected = local.add_click(x, y, True).mask
    assert iou(mask, expected) >= 0.999 and iou(mask, gt) > 0.5
    # a negative click on the largest error, then the same two clicks again (no change), then undo
    errors = expected.astype(bool) & ~gt
    nx, ny = inner_point(errors) if errors.any() else (2, 2)
    two = first + [keypoint(nx, ny, w, h, positive=False)]
    mask2, _ = decoded(interactive(ls, ml_id, tasks["banana1"], two))
    expected2 = local.add_click(nx, ny, False).mask
    assert iou(mask2, expected2) >= 0.999
    again, _ = decoded(interactive(ls, ml_id, tasks["banana1"], two))
    assert iou(again, expected2) >= 0.999
    back, _ = decoded(interactive(ls, ml_id, tasks["banana1"], first))  # the negative keypoint deleted
    assert iou(back, local.undo().mask) >= 0.999


def test_a_rectangle_is_a_box_prompt(servers, project):
    ls, _ = servers
    _, tasks, ml_id = project
    _, image, gt = grabcut("teddy")
    h, w = gt.shape
    ys, xs = np.nonzero(gt)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    item = {"type": "rectanglelabels", "from_name": "box", "to_name": "image", "original_width": w,
            "original_height": h, "image_rotation": 0,
            "value": {"x": 100.0 * x0 / w, "y": 100.0 * y0 / h, "width": 100.0 * (x1 - x0) / w,
                      "height": 100.0 * (y1 - y0) / h, "rotation": 0, "rectanglelabels": ["Object"]}}
    mask, _ = decoded(interactive(ls, ml_id, tasks["teddy"], [item]))
    local = ivos.ImagePredictor(ivos.load("ivos-lite0", threads=1))
    local.set_image(image)
    view = box_view((x0, y0, x1, y1), BOX_MARGIN)
    inside = np.zeros_like(gt, np.uint8)
    inside[y0:y1, x0:x1] = 1
    expected = local.predict([[(x0 + x1) / 2, (y0 + y1) / 2]], [1], view=view).mask * inside
    assert iou(mask, expected) >= 0.999 and iou(mask, gt) > 0.5
    assert not (mask.astype(bool) & ~inside.astype(bool)).any()  # nothing outside the rectangle


def test_an_annotation_from_the_prediction_is_saved_and_read_back(servers, project):
    ls, _ = servers
    _, tasks, ml_id = project
    _, _, gt = grabcut("banana1")
    x, y = inner_point(gt)
    mask, item = decoded(interactive(ls, ml_id, tasks["banana1"], [keypoint(x, y, gt.shape[1], gt.shape[0])]))
    r = ls.api("POST", f"/api/tasks/{tasks['banana1']}/annotations", json={"result": [item], "lead_time": 2.0})
    assert r.status_code == 201, r.text
    back = ls.api("GET", f"/api/annotations/{r.json()['id']}").json()
    (stored,) = back["result"]
    assert stored["value"]["rle"] == item["value"]["rle"]
    assert np.array_equal(brush_rle_to_mask(stored["value"]["rle"], gt.shape[0], gt.shape[1]), mask)


def test_bad_requests_get_readable_errors_and_the_server_keeps_serving(servers, project):
    import httpx

    ls, server = servers
    pid, tasks, ml_id = project
    auth = {"Authorization": f"Bearer {API_KEY}"}
    backend = f"{server.url}/label-studio"
    # a task whose image is not on Label Studio, through Label Studio: its errors list
    r = ls.api("POST", f"/api/projects/{pid}/import", json=[{"image": "/data/upload/999/missing.png"}])
    missing = r.json()["task_ids"][0] if "task_ids" in r.json() else max(
        t["id"] for t in ls.api("GET", f"/api/tasks?project={pid}").json()["tasks"])
    reply = interactive(ls, ml_id, missing, [keypoint(5, 5, 10, 10)])
    assert reply.get("errors"), reply
    # directly: the backend's own messages
    body = {"tasks": [{"id": missing, "data": {"image": "/data/upload/999/missing.png"}}], "project": f"{pid}.1",
            "label_config": LABEL_STUDIO_CONFIG, "params": {"context": {"result": [keypoint(5, 5, 10, 10)]}}}
    r = httpx.post(backend + "/predict", json=body, headers=auth, timeout=60)
    # (Label Studio answers a missing upload with HTTP 500, not 404: ivos says so, naming the image)
    assert r.status_code in (404, 502) and "missing.png" in r.json()["error"]["message"], r.text
    malformed = {**body, "tasks": [{"id": tasks["banana1"], "data": {"image": "x"}}],
                 "params": {"context": {"result": [{"type": "keypointlabels", "value": {"x": 250, "y": 3}}]}}}
    r = httpx.post(backend + "/predict", json=malformed, headers=auth, timeout=60)
    assert r.status_code == 422 and "percent" in r.json()["error"]["message"]
    r = httpx.post(backend + "/setup", json={"project": "7.1", "schema": "<View><Image name='i' value='$i'/></View>"},
                   headers=auth, timeout=60)
    assert r.status_code == 422 and "BrushLabels" in r.json()["error"]["message"]
    r = httpx.post(backend + "/setup", json={"project": "8.1", "schema": LABEL_STUDIO_CONFIG,
                                              "hostname": ls.url, "access_token": "wrong-token"}, headers=auth, timeout=60)
    assert r.status_code == 200
    wrong = {**body, "project": "8.1", "tasks": [{"id": 1, "data": {"image": "/data/upload/1/x.png"}}]}
    r = httpx.post(backend + "/predict", json=wrong, headers=auth, timeout=60)
    assert r.status_code == 502 and "token" in r.json()["error"]["message"]
    assert httpx.post(backend + "/predict", json=body, timeout=60).status_code == 401  # no API key
    assert httpx.get(backend + "/health", timeout=10).json()["status"] == "UP"
    x, y = inner_point(grabcut("banana1")[2])
    decoded(interactive(ls, ml_id, tasks["banana1"], [keypoint(x, y, *grabcut("banana1")[2].shape[::-1])]))
