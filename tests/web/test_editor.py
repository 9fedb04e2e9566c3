"""The web editor at ``/`` of ``ivos serve``, end to end in a real headless Chromium (Selenium):
open the page, load the demo clip, click on the object, check the overlay's pixels against the
server's mask (at the object, away from it), a negative click and undo, propagate to 100%, jump
to the suggested frame, correct it with a click, re-propagate, export, and check that the
downloads decode (the sticker with an alpha channel) and hold the server's masks. Also: an image
session, readable server errors, the help overlay, the page's files and the layout at 1280x720.
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ivos

pytestmark = pytest.mark.slow

DEMO = json.loads((Path(ivos.__file__).parent / "data" / "demo_clip.json").read_text())
WAIT_S = 90.0


# ---- helpers ---------------------------------------------------------------------------------
def wait_for(driver, script: str, *args, timeout: float = WAIT_S, what: str = ""):
    """Polls ``script`` (JavaScript returning a value) until it is truthy; returns the value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.1)
    logs = "\n".join(str(e) for e in driver.get_log("browser"))
    raise AssertionError(f"timed out waiting for {what or script!r} (last value {value!r})\nbrowser log:\n{logs}")


def open_editor(driver, url: str) -> None:
    driver.get(url + "/")
    wait_for(driver, "return window.ivosEditor && window.ivosEditor.ready", what="the editor to start")


def click_canvas(driver, x: float, y: float, *, button: str = "left", shift: bool = False) -> None:
    """A real mouse click at image pixel (x, y) of the frame shown, at that point of the viewport
    (right-button, or with Shift held, when asked)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.keys import Keys

    w, h = driver.execute_script("return [window.ivosEditor.state.width, window.ivosEditor.state.height]")
    left, top, rw, rh = driver.execute_script(
        "const r = document.getElementById('click-canvas').getBoundingClientRect(); "
        "return [r.left, r.top, r.width, r.height]")
    vx, vy = round(left + (x + 0.5) * rw / w), round(top + (y + 0.5) * rh / h)
    if shift:
        ActionChains(driver).key_down(Keys.SHIFT).perform()
    builder = ActionBuilder(driver)
    builder.pointer_action.move_to_location(vx, vy)
    if button == "right":
        builder.pointer_action.context_click()
    else:
        builder.pointer_action.click()
    builder.perform()
    if shift:
        ActionChains(driver).key_up(Keys.SHIFT).perform()


def wait_propagated(driver, timeout: float = 180.0) -> None:
    """Until a propagation job is done, shown at 100%, its masks read and a frame suggested."""
    wait_for(driver, "return window.ivosEditor.state.job && window.ivosEditor.state.job.status === 'done' && "
                     "document.getElementById('progress').getAttribute('aria-valuenow') === '100' && "
                     "document.getElementById('progress-text').textContent.startsWith('Done:') && "
                     "!window.ivosEditor.state.busy.has('job') && !document.getElementById('suggest').hidden",
             timeout=timeout, what="propagation to 100%")


def overlay_alpha(driver) -> np.ndarray:
    """The mask canvas's alpha channel, (H, W) uint8."""
    raw = driver.execute_script("""
        const c = document.getElementById('mask-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = '';
        for (let i = 3; i < d.length; i += 4) s += String.fromCharCode(d[i]);
        return [c.width, c.height, btoa(s)];""")
    import base64

    w, h, data = raw
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(h, w)


def overlay_pixel(driver, x: int, y: int) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.getElementById('mask-canvas').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data)", x, y)


def server_masks(url: str, sid: str) -> dict[int, np.ndarray]:
    """Object 1's mask of every frame, as the server has it (GET .../masks)."""
    import httpx

    from ivos.formats.rle import rle_decode

    doc = httpx.get(f"{url}/v1/videos/{sid}/masks", timeout=60).json()
    return {f["frame_idx"]: rle_decode(f["masks"]["1"]) for f in doc["frames"] if "1" in f["masks"]}


def server_frame_mask(url: str, sid: str, frame: int) -> np.ndarray:
    import httpx

    from ivos.formats.rle import rle_decode

    doc = httpx.get(f"{url}/v1/videos/{sid}/frames/{frame}/masks", timeout=60).json()
    return rle_decode(doc["masks"]["1"]["rle"])


def wait_download(folder: Path, suffix: str, timeout: float = WAIT_S) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        if done and not any(p.suffix == ".crdownload" for p in folder.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no *{suffix} download in {folder}: {sorted(p.name for p in folder.iterdir())}")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def severe_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


# ---- the demo clip, end to end ---------------------------------------------------------------
def test_demo_clip_click_propagate_refine_export(web_server, browser):
    from ivos.formats.rle import rle_decode

    url, d = web_server.url, browser
    open_editor(d, url)
    assert d.execute_script("return document.documentElement.scrollWidth") <= 1280  # fits 1280x720
    d.find_element("id", "demo-button").click()
    wait_for(d, "return document.getElementById('frame-canvas').dataset.frame === '0'", what="frame 0 shown")
    sid = d.execute_script("return window.ivosEditor.state.id")
    assert sid.startswith("vid_")
    assert d.execute_script("return [window.ivosEditor.state.numFrames, window.ivosEditor.state.width, "
                            "window.ivosEditor.state.height]") == [DEMO["frames"], DEMO["width"], DEMO["height"]]
    assert d.execute_script("return location.hash") == f"#{sid}"

    # one positive click on the object: the overlay is the server's mask, on the object
    cx, cy = DEMO["clicks"][0]["x"], DEMO["clicks"][0]["y"]
    click_canvas(d, cx, cy)
    wait_for(d, "return window.ivosEditor.metrics.clicks.length === 1", what="the first click's mask")
    alpha = overlay_alpha(d)
    mask0 = server_frame_mask(url, sid, 0)
    np.testing.assert_array_equal(alpha > 0, mask0.astype(bool))
    truth0 = rle_decode(DEMO["ground_truth_rle"][0]).astype(bool)
    assert iou(mask0.astype(bool), truth0) > 0.8, "the click did not find the demo object"
    at_object = overlay_pixel(d, cx, cy)
    away = overlay_pixel(d, DEMO["width"] - 20, 15)
    color = d.execute_script("return window.ivosEditor.state.objects[0].color")
    want = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    # the canvas stores premultiplied alpha: colours read back within a few levels
    assert at_object[3] > 0 and max(abs(a - b) for a, b in zip(at_object[:3], want)) <= 3, (at_object, color)
    assert away == [0, 0, 0, 0], away
    assert "1 (1 +, 0 −)" in d.find_element("id", "fact-clicks").text

    # a negative (right) click in the background, then undo with the keyboard
    click_canvas(d, DEMO["width"] - 30, DEMO["height"] - 30, button="right")
    wait_for(d, "return window.ivosEditor.metrics.clicks.length === 2", what="the negative click")
    assert d.execute_script("return window.ivosEditor.metrics.clicks[1].positive") is False
    d.find_element("id", "click-canvas").send_keys("z")
    wait_for(d, "return document.getElementById('fact-clicks').textContent.startsWith('1 ')", what="undo")
    import httpx

    objects = httpx.get(f"{url}/v1/videos/{sid}", timeout=30).json()["objects"]
    assert objects[0]["clicks"]["0"] == [[pytest.approx(cx + 0.5, abs=1.0), pytest.approx(cy + 0.5, abs=1.0), 1]]

    # propagate to 100%
    d.find_element("id", "propagate-button").click()
    wait_propagated(d)
    assert d.find_element("id", "progress-text").text.startswith("Done: 40 frames")
    assert d.execute_script("return window.ivosEditor.state.masks.size") == DEMO["frames"]

    # the timeline: a colour per frame, the suggested frame marked; jump to it
    suggested = int(wait_for(d, "return !document.getElementById('suggest').hidden && "
                                "document.getElementById('suggest-button').dataset.frame", what="a suggested frame"))
    assert suggested == httpx.get(f"{url}/v1/videos/{sid}/suggest", timeout=30).json()["frame_idx"]
    strip = d.execute_script("""
        const c = document.getElementById('timeline-canvas'), n = window.ivosEditor.state.numFrames;
        const ctx = c.getContext('2d'), y = Math.floor(c.height / 2);
        return Array.from({length: n}, (_, i) => Array.from(ctx.getImageData(Math.floor((i + 0.3) * c.width / n), y, 1, 1).data));""")
    assert all(p[3] == 255 and p[:3] != [0x26, 0x2c, 0x35] for p in strip), "a frame without a colour"
    d.find_element("id", "suggest-button").click()
    wait_for(d, "return document.getElementById('frame-canvas').dataset.frame === arguments[0]", str(suggested),
             what="the suggested frame shown")
    assert d.find_element("id", "fact-frame").text == f"{suggested + 1} of {DEMO['frames']}"
    masks = server_masks(url, sid)
    np.testing.assert_array_equal(overlay_alpha(d) > 0, masks[suggested].astype(bool))

    # correct the suggested frame with one click (refine), re-propagation is offered and runs
    truth = rle_decode(DEMO["ground_truth_rle"][suggested]).astype(bool)
    ys, xs = np.nonzero(truth)
    inside = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
    rx, ry = int(xs[inside]), int(ys[inside])
    before = masks[suggested]
    click_canvas(d, rx, ry)
    wait_for(d, "return window.ivosEditor.metrics.clicks.length === 3", what="the correction")
    assert d.execute_script("return window.ivosEditor.metrics.clicks[2].refined") is True
    refined = server_frame_mask(url, sid, suggested)
    assert refined[ry, rx] == 1
    np.testing.assert_array_equal(overlay_alpha(d) > 0, refined.astype(bool))
    assert not np.array_equal(refined, before) or before[ry, rx] == 1
    banner = d.find_element("id", "repropagate-banner")
    assert banner.is_displayed() and f"Frame {suggested + 1} corrected" in banner.text
    first_job = d.execute_script("return window.ivosEditor.state.job.job_id")
    d.find_element("id", "repropagate-button").click()
    wait_for(d, "return window.ivosEditor.state.job.job_id !== arguments[0]", first_job, what="a second job")
    wait_propagated(d)
    annotated = httpx.get(f"{url}/v1/videos/{sid}", timeout=30).json()["objects"][0]["annotated_frames"]
    assert sorted(annotated) == sorted({0, suggested})

    # exports: the files the browser downloaded hold the server's masks
    masks = server_masks(url, sid)
    assert sorted(masks) == list(range(DEMO["frames"]))
    d.find_element("css selector", "[data-export=sticker]").click()
    sticker = wait_download(d.downloads, ".webp")
    d.find_element("css selector", "[data-export=png-zip]").click()
    zipped = wait_download(d.downloads, ".zip")
    d.find_element("css selector", "[data-export=coco]").click()
    coco_file = wait_download(d.downloads, ".json")

    from PIL import Image

    from ivos.formats.rle import mask_bbox

    with Image.open(sticker) as im:
        assert im.format == "WEBP" and im.mode == "RGBA" and getattr(im, "n_frames", 1) > 1
        alpha_values = set()
        for k in range(im.n_frames):
            im.seek(k)
            alpha_values |= set(np.unique(np.asarray(im.convert("RGBA"))[..., 3]).tolist())
        size = im.size
    assert 0 in alpha_values and 255 in alpha_values, f"the sticker has no transparency: {sorted(alpha_values)}"
    # cropped to the box of every frame's mask (scaled down at most, never stretched)
    _, _, bw, bh = mask_bbox(np.any(np.stack(list(masks.values())), axis=0))
    assert abs(size[0] / size[1] - bw / bh) < 0.05 * bw / bh and size[0] <= bw and size[1] <= bh, (size, bw, bh)
    with zipfile.ZipFile(zipped) as zf:
        names = sorted(zf.namelist())
        assert len(names) == DEMO["frames"]
        for i, name in enumerate(names):
            png = np.asarray(Image.open(io.BytesIO(zf.read(name))))
            np.testing.assert_array_equal(png > 0, masks[i].astype(bool), err_msg=name)
    from pycocotools import mask as mask_utils

    coco = json.loads(coco_file.read_text())
    assert len(coco["images"]) == DEMO["frames"]
    # one annotation per frame where the object is (empty masks have none)
    assert len(coco["annotations"]) == sum(bool(m.any()) for m in masks.values())
    by_image = {img["id"]: i for i, img in enumerate(sorted(coco["images"], key=lambda m: m["id"]))}
    for ann in coco["annotations"]:
        rle = ann["segmentation"]
        if isinstance(rle["counts"], str):
            rle = {**rle, "counts": rle["counts"].encode()}
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), masks[by_image[ann["image_id"]]].astype(bool))
    latencies = d.execute_script("return window.ivosEditor.metrics.clicks.map(c => c.paint_ms)")
    assert all(0 < t < 60_000 for t in latencies)
    assert d.execute_script("return performance.getEntriesByName('ivos:click-to-paint').length") == 3
    assert not severe_errors(d)


def test_objects_cancel_and_reopening_the_session(web_server, browser):
    url, d = web_server.url, browser
    open_editor(d, url)
    d.find_element("id", "demo-button").click()
    wait_for(d, "return document.getElementById('frame-canvas').dataset.frame === '0'", what="frame 0 shown")
    sid = d.execute_script("return window.ivosEditor.state.id")
    cx, cy = DEMO["clicks"][0]["x"], DEMO["clicks"][0]["y"]
    click_canvas(d, cx, cy)
    wait_for(d, "return window.ivosEditor.metrics.clicks.length === 1", what="the click")

    # a second object (N), its own colour, then removed again with its button
    import httpx

    d.find_element("id", "click-canvas").send_keys("n")
    assert d.execute_script("return window.ivosEditor.state.selected") == 2
    colors = d.execute_script("return window.ivosEditor.state.objects.map(o => o.color)")
    assert len(colors) == 2 and colors[0] != colors[1]
    ox, oy = DEMO["width"] - 60, 40
    click_canvas(d, ox, oy)
    wait_for(d, "return window.ivosEditor.metrics.clicks.length === 2", what="object 2's click")
    assert d.execute_script("return window.ivosEditor.metrics.clicks[1].obj") == 2

    def rgb(hex_color):
        return [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    def assert_color(x, y, color):
        px = overlay_pixel(d, x, y)
        assert px[3] > 0 and max(abs(a - b) for a, b in zip(px[:3], rgb(color))) <= 3, (x, y, px, color)
    # the selected object is drawn on top; each object's mask holds its own clicked pixel
    assert_color(ox, oy, colors[1])
    d.find_element("id", "click-canvas").send_keys("1")
    assert d.execute_script("return window.ivosEditor.state.selected") == 1
    assert_color(cx, cy, colors[0])
    d.find_element("id", "click-canvas").send_keys("2")
    assert_color(ox, oy, colors[1])
    assert [o["obj_id"] for o in httpx.get(f"{url}/v1/videos/{sid}", timeout=30).json()["objects"]] == [1, 2]
    d.find_element("css selector", "#objects li[data-obj='2'] .remove").click()
    wait_for(d, "return window.ivosEditor.state.objects.length === 1", what="object 2 removed")
    assert [o["obj_id"] for o in httpx.get(f"{url}/v1/videos/{sid}", timeout=30).json()["objects"]] == [1]
    assert overlay_pixel(d, ox, oy)[3] == 0

    d.find_element("id", "click-canvas").send_keys("p")
    wait_for(d, "return window.ivosEditor.state.job && "
                "['running', 'done'].includes(window.ivosEditor.state.job.status)", what="a running job")
    d.find_element("id", "click-canvas").send_keys("\ue00c")  # Esc: cancel
    wait_for(d, "return window.ivosEditor.state.job && ['cancelled', 'done'].includes(window.ivosEditor.state.job.status)"
                " && !window.ivosEditor.state.busy.has('job')", what="the job to stop")
    status = d.execute_script("return window.ivosEditor.state.job.status")
    if status == "cancelled":  # the tiny network may finish first on a fast machine
        assert "Cancelled" in d.find_element("id", "progress-text").text
        assert d.find_element("id", "export-card").find_element("css selector", "[data-export=sticker]").get_attribute("disabled")
    # a reload comes back to the same session with its clicks
    d.refresh()
    wait_for(d, "return window.ivosEditor.ready && window.ivosEditor.state.id === arguments[0]", sid,
             what="the session reopened from the URL")
    wait_for(d, "return document.getElementById('fact-clicks').textContent.startsWith('1 ')", what="the clicks back")
    # the session is in the list of recent sessions (GET /v1/sessions), marked as the current one
    d.find_element("id", "recent-button").click()
    current = wait_for(d, "const li = document.querySelector('#recent-list li.current'); return li && li.textContent",
                       what="the recent sessions")
    assert sid in current and "40 frames" in current
    d.find_element("tag name", "body").send_keys("\ue00c")
    assert not d.find_element("id", "recent").is_displayed()
    assert not severe_errors(d)


def test_image_session_click_and_cutout(web_server, browser, tmp_path):
    from PIL import Image

    url, d = web_server.url, browser
    image = np.full((120, 160, 3), 40, np.uint8)
    image[30:90, 50:110] = (230, 60, 50)
    path = tmp_path / "square.png"
    Image.fromarray(image).save(path)
    open_editor(d, url)
    d.find_element("id", "file-input").send_keys(str(path))
    wait_for(d, "return window.ivosEditor.state.kind === 'image' && "
                "document.getElementById('frame-canvas').dataset.frame === '0'", what="the image shown")
    sid = d.execute_script("return window.ivosEditor.state.id")
    click_canvas(d, 80, 60)
    wait_for(d, "return window.ivosEditor.metrics.clicks.length === 1", what="the image click")
    import httpx

    from ivos.formats.rle import rle_decode

    mask = rle_decode(httpx.get(f"{url}/v1/images/{sid}", timeout=30).json()["mask"]["rle"])
    np.testing.assert_array_equal(overlay_alpha(d) > 0, mask.astype(bool))
    assert overlay_pixel(d, 80, 60)[3] > 0 and overlay_pixel(d, 5, 5)[3] == 0

    # zoomed in (the wheel, then +), a Shift+click lands on the image pixel under the cursor
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    box = d.find_element("id", "click-canvas")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(box), 0, -300).perform()
    d.find_element("id", "click-canvas").send_keys("+")
    zoom = d.execute_script("return new DOMMatrix(getComputedStyle(document.getElementById('canvas-box')).transform).a")
    assert zoom > 1.5, zoom
    click_canvas(d, 70, 45, shift=True)
    wait_for(d, "return window.ivosEditor.metrics.clicks.length === 2", what="the zoomed shift-click")
    clicks = httpx.get(f"{url}/v1/images/{sid}", timeout=30).json()["clicks"]
    assert clicks[1]["positive"] is False
    assert abs(clicks[1]["x"] - 70.5) < 0.5 and abs(clicks[1]["y"] - 45.5) < 0.5, clicks[1]
    d.find_element("id", "click-canvas").send_keys("z")  # undo the negative click
    wait_for(d, "return document.getElementById('fact-clicks').textContent.startsWith('1 ')", what="undo")
    d.find_element("id", "click-canvas").send_keys("0")
    assert d.execute_script("return getComputedStyle(document.getElementById('canvas-box')).transform") in (
        "none", "matrix(1, 0, 0, 1, 0, 0)")
    d.find_element("css selector", "[data-image-export=cutout]").click()
    cutout = wait_download(d.downloads, "-cutout.png")
    with Image.open(cutout) as im:
        assert im.mode == "RGBA"
        rgba = np.asarray(im)
    ys, xs = np.nonzero(mask)
    assert rgba.shape[:2] == (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    np.testing.assert_array_equal(rgba[..., 3] > 0, mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(bool))
    assert not severe_errors(d)


def test_server_errors_are_shown_as_readable_messages(web_server, browser, tmp_path):
    url, d = web_server.url, browser
    open_editor(d, url)
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"this is not a video at all" * 10)
    d.find_element("id", "file-input").send_keys(str(bad))
    text = wait_for(d, "const t = document.querySelector('.toast'); return t && t.textContent",
                    what="an error message")
    assert "Opening holiday.mp4" in text and "cannot be read as a video" in text and "HTTP 400" in text, text
    assert d.execute_script("return window.ivosEditor.state.id") is None
    # the help overlay: ? opens it, Esc closes it
    d.find_element("tag name", "body").send_keys("?")
    assert d.find_element("id", "help").is_displayed()
    assert "propagate through the video" in d.find_element("id", "help").text
    d.find_element("tag name", "body").send_keys("\ue00c")
    assert not d.find_element("id", "help").is_displayed()


def test_page_and_files_are_served_without_a_key_and_fetch_nothing_external(web_server):
    import re

    import httpx

    page = httpx.get(web_server.url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(r.startswith(("/web/", "data:")) for r in refs), refs
    for name in ("editor.js", "api.js", "masks.js", "style.css"):
        r = httpx.get(f"{web_server.url}/web/{name}", timeout=30)
        assert r.status_code == 200, name
        assert "http://" not in r.text and "https://" not in r.text, f"{name} names an external URL"
    assert httpx.get(web_server.url + "/web/nothing.js", timeout=30).status_code == 404
    # the routes the editor added are in the OpenAPI schema
    paths = httpx.get(web_server.url + "/openapi.json", timeout=30).json()["paths"]
    assert {"/v1/videos/demo", "/v1/videos/{session_id}/frames/{frame_idx}/image",
            "/v1/images/{session_id}/image"} <= set(paths)


def test_video_upload_from_the_file_picker(web_server, browser):
    d = browser
    open_editor(d, web_server.url)
    clip = Path(ivos.__file__).parent / "data" / "demo_clip.mp4"
    d.find_element("id", "file-input").send_keys(str(clip))
    wait_for(d, "return window.ivosEditor.state.kind === 'video' && "
                "document.getElementById('frame-canvas').dataset.frame === '0'", what="the uploaded video shown")
    assert d.execute_script("return window.ivosEditor.state.numFrames") == DEMO["frames"]
    assert "demo_clip.mp4" in d.find_element("id", "session-info").text
    d.find_element("id", "click-canvas").send_keys("\ue014")  # → next frame
    wait_for(d, "return document.getElementById('frame-canvas').dataset.frame === '1'", what="frame 2 shown")
    assert d.find_element("id", "fact-frame").text == f"2 of {DEMO['frames']}"
    assert not severe_errors(d)


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_layout_fits_the_viewport(web_server, tmp_path, size):
    """Everything in view at 1280x720 and larger: nothing wider than the window, the frame inside
    the stage, the side panel, the timeline and the status bar on screen."""
    from ivos.bench.web_editor import find_browser
    from ivos.bench.web_editor import make_driver as chromium

    found = find_browser()
    if found is None:
        pytest.skip("no Chromium: apt-get install chromium chromium-driver")
    d = chromium(*found, tmp_path, width=size[0], height=size[1])
    try:
        open_editor(d, web_server.url)
        d.find_element("id", "demo-button").click()
        wait_for(d, "return document.getElementById('frame-canvas').dataset.frame === '0'", what="frame 0 shown")
        rects = d.execute_script("""
            const r = id => { const b = document.getElementById(id).getBoundingClientRect();
                              return [b.left, b.top, b.right, b.bottom]; };
            return {w: innerWidth, h: innerHeight, scroll: document.documentElement.scrollWidth,
                    stage: r('stage'), box: r('canvas-box'), panel: r('panel'), timeline: r('timeline'),
                    status: r('status-text'), propagate: r('propagate-button'), topbar: r('settings-button')};""")
        w, h = rects["w"], rects["h"]
        assert (w, h) == size and rects["scroll"] <= w
        for name in ("panel", "timeline", "status", "propagate", "topbar"):
            left, top, right, bottom = rects[name]
            assert 0 <= left < right <= w and 0 <= top < bottom <= h, (name, rects[name], size)
        sl, st, sr, sb = rects["stage"]
        bl, bt, br, bb = rects["box"]
        assert sl <= bl < br <= sr and st <= bt < bb <= sb, (rects["stage"], rects["box"])
        assert (br - bl) >= 0.6 * (sr - sl) or (bb - bt) >= 0.6 * (sb - st)  # the frame fills the stage
    finally:
        d.quit()
