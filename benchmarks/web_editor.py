"""``python -m ivos.bench.web_editor``: click-to-paint latency of the web editor, measured in a
real headless Chromium, next to the server's own time for the same clicks; and the editor's
screenshots for the README.

What runs: ``ivos serve`` on loopback (a uvicorn subprocess; the shipped ``--model`` and
``--osvos-model``), Debian's Chromium driven by Selenium at ``--width`` x ``--height``, the page
at ``/``. The demo clip is opened with its button; ``--warmup`` clicks on the last frame are not
counted; then ``--clicks`` real mouse clicks on frame 0 (the first on the demo's object, then
alternately positive inside the object's ground truth and negative outside it, a fixed
sequence). For each click the page records (Performance API, ``performance.now()``):

* click-to-paint: from the ``pointerdown`` event to the first animation frame after the new
  mask is drawn on the canvas (the frame in which it appears);
* request: the ``fetch`` round trip of ``POST .../points``;
* server: the click's ``timings.total_ms`` reported by the server (network + CRF, as
  ``ivos.VideoPredictor.add_new_points`` measures it);
* decode + draw: RLE decode and overlay painting in the page.

Reported: median (the issue's figure), p90, min and max of each, and the overhead of the
browser and HTTP (click-to-paint minus server). With ``--screenshots DIR`` it also saves the
editor after a click, during propagation and with the suggested frame on the timeline.

Writes ``--out`` (markdown, the command at the top) and the same figures as JSON next to it.
Needs the serve extra, selenium and a Chromium + chromedriver (``apt-get install chromium
chromium-driver``; or ``--chromium`` / ``--chromedriver``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ivos
from ivos.serve.testing import ServerProcess

log = logging.getLogger("ivos.bench")


CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DEMO_META = Path(ivos.__file__).parent / "data" / "demo_clip.json"


# ---- browser and server (shared with tests/web) ----------------------------------------------
def find_browser(chromium: str | None = None, chromedriver: str | None = None) -> tuple[str, str] | None:
    """(browser, driver) paths: the arguments, else $IVOS_CHROMIUM / $IVOS_CHROMEDRIVER, else the
    PATH; None when either is missing."""
    browser = chromium or os.environ.get("IVOS_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM)), None)
    driver = chromedriver or os.environ.get("IVOS_CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


BROWSER_START_ATTEMPTS = 3
"""Starts of Chromium tried before giving up: on a loaded machine a cold start sometimes exits
before chromedriver sees it ("DevToolsActivePort file doesn't exist")."""


def _start_chromium(webdriver, options, service_class, driver_path: str):
    from selenium.common.exceptions import SessionNotCreatedException

    for attempt in range(1, BROWSER_START_ATTEMPTS + 1):
        try:
            return webdriver.Chrome(options=options, service=service_class(executable_path=driver_path))
        except SessionNotCreatedException as e:
            if attempt == BROWSER_START_ATTEMPTS:
                raise
            log.warning("Chromium did not start (attempt %d of %d): %s", attempt, BROWSER_START_ATTEMPTS,
                        str(e).splitlines()[0])
            time.sleep(2.0 * attempt)


def make_driver(browser: str, driver_path: str, download_dir: Path, *, width: int = 1280, height: int = 720):
    """A headless Chromium whose viewport is ``width`` x ``height`` CSS pixels (device scale 1)
    and whose downloads go to ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # a profile of its own: a browser still shutting down, or any other Chromium of this user,
    # holds the default profile's lock, and a second one then exits before it opens DevTools
    profile = tempfile.mkdtemp(prefix="ivos-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--disable-extensions",
                "--no-first-run", "--disable-background-networking", "--disable-renderer-backgrounding",
                "--disable-background-timer-throttling", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = _start_chromium(webdriver, options, DriverService, driver_path)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    close = driver.quit

    def quit_and_forget_profile() -> None:
        close()
        shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_forget_profile
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                  "deviceScaleFactor": 1, "mobile": False})
    driver.set_script_timeout(120)
    return driver


def wait_for(driver, script: str, *args, timeout: float = 120.0, what: str = ""):
    """Polls ``script`` (JavaScript returning a value) until it is truthy; returns the value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what or script!r} (last value {value!r})")


def click_at(driver, x: float, y: float, *, positive: bool = True) -> None:
    """A real mouse click at image pixel (x, y) of the frame shown (right click when negative)."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "click-canvas")
    w, h = driver.execute_script("return [window.ivosEditor.state.width, window.ivosEditor.state.height]")
    rw, rh = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]",
                                   canvas)
    actions = ActionChains(driver).move_to_element_with_offset(canvas, x * rw / w - rw / 2, y * rh / h - rh / 2)
    (actions.click() if positive else actions.context_click()).perform()


def open_demo(driver, url: str) -> str:
    driver.get(url + "/")
    wait_for(driver, "return window.ivosEditor && window.ivosEditor.ready", what="the editor")
    driver.find_element("id", "demo-button").click()
    wait_for(driver, "return document.getElementById('frame-canvas').dataset.frame === '0'", what="frame 0")
    return driver.execute_script("return window.ivosEditor.state.id")


def go_to_frame(driver, frame: int) -> None:
    driver.execute_script("document.getElementById('frame-input').value = arguments[0];"
                          "document.getElementById('frame-input').dispatchEvent(new Event('change'))", frame + 1)
    wait_for(driver, "return document.getElementById('frame-canvas').dataset.frame === arguments[0]", str(frame),
             what=f"frame {frame}")


# ---- the measurement -------------------------------------------------------------------------
def click_sequence(n: int, seed: int = 0) -> list[tuple[int, int, bool]]:
    """The demo's first click, then alternately a positive click inside frame 0's ground truth and
    a negative one outside it (not too close to the edge of either), fixed by ``seed``."""
    from ivos.formats.rle import rle_decode

    meta = json.loads(DEMO_META.read_text())
    truth = rle_decode(meta["ground_truth_rle"][0]).astype(bool)
    from scipy import ndimage

    inside = np.argwhere(ndimage.binary_erosion(truth, iterations=6))
    outside = np.argwhere(~ndimage.binary_dilation(truth, iterations=6))
    rng = np.random.default_rng(seed)
    first = meta["clicks"][0]
    out = [(first["x"], first["y"], True)]
    for i in range(n - 1):
        pool, positive = (inside, True) if i % 2 else (outside, False)
        y, x = pool[rng.integers(len(pool))]
        out.append((int(x), int(y), positive))
    return out


def stats(values: list[float]) -> dict:
    a = np.asarray(values, np.float64)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "min": float(a.min()),
            "max": float(a.max()), "mean": float(a.mean())}


def measure_clicks(driver, sequence: list[tuple[int, int, bool]], *, warmup: int,
                   after_first=None) -> list[dict]:
    """Clicks ``warmup`` times on the last frame (not counted), then ``sequence`` on frame 0;
    returns the page's record of each counted click. ``after_first()`` runs once the first
    counted click's mask is on screen (the screenshot after a click), before the second."""
    n_frames = driver.execute_script("return window.ivosEditor.state.numFrames")
    meta = json.loads(DEMO_META.read_text())
    if warmup:
        go_to_frame(driver, n_frames - 1)
        for k in range(warmup):
            before = driver.execute_script("return window.ivosEditor.metrics.clicks.length")
            click_at(driver, meta["width"] * (0.3 + 0.1 * k), meta["height"] * 0.5)
            wait_for(driver, "return window.ivosEditor.metrics.clicks.length > arguments[0]", before, what="warm-up")
        go_to_frame(driver, 0)
    start = driver.execute_script("return window.ivosEditor.metrics.clicks.length")
    for i, (x, y, positive) in enumerate(sequence):
        click_at(driver, x, y, positive=positive)
        wait_for(driver, "return window.ivosEditor.metrics.clicks.length > arguments[0]", start + i,
                 what=f"click {i + 1}")
        if i == 0 and after_first is not None:
            after_first()
        time.sleep(0.15)  # a person's pause between clicks: nothing queued behind the last one
    return driver.execute_script("return window.ivosEditor.metrics.clicks.slice(arguments[0])", start)


def screenshots(driver, folder: Path, timeout: float) -> dict:
    """Saves the editor during propagation and with the suggested frame (the click screenshot is
    taken after the first measured click, by ``measure_clicks``)."""
    folder.mkdir(parents=True, exist_ok=True)
    shots = {"click": "web_editor_click.png"}
    driver.find_element("id", "propagate-button").click()
    # a frame or more into the propagation stage, with the followed frame and its mask shown
    wait_for(driver, "const j = window.ivosEditor.state.job; return j && j.stage === 'propagate' && "
                     "j.done >= Math.floor(j.total / 3)", timeout=timeout, what="propagation under way")
    time.sleep(1.0)
    driver.save_screenshot(str(folder / "web_editor_propagation.png"))
    shots["propagation"] = "web_editor_propagation.png"
    wait_for(driver, "return window.ivosEditor.state.job.status === 'done' && "
                     "!document.getElementById('suggest').hidden", timeout=timeout, what="propagation done")
    driver.find_element("id", "suggest-button").click()
    frame = driver.execute_script("return window.ivosEditor.state.suggestion.frame_idx")
    wait_for(driver, "return document.getElementById('frame-canvas').dataset.frame === arguments[0]", str(frame),
             what="the suggested frame")
    time.sleep(0.5)
    driver.save_screenshot(str(folder / "web_editor_suggested.png"))
    shots["suggested"] = "web_editor_suggested.png"
    shots["suggested_frame"] = frame
    return shots


def environment(driver, server_url: str) -> dict:
    import httpx
    import selenium

    ready = httpx.get(server_url + "/readyz", timeout=10).json()
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    caps = driver.capabilities
    return {"ivos": ivos.__version__, "python": platform.python_version(), "cpu": cpu, "cpus": os.cpu_count(),
            "load_avg": list(os.getloadavg()), "browser": f"{caps.get('browserName')} {caps.get('browserVersion')}",
            "selenium": selenium.__version__, "model_backend": ready.get("model"), "osvos_backend": ready.get("osvos"),
            "user_agent": driver.execute_script("return navigator.userAgent")}


def render_markdown(report: dict, command: str) -> str:
    c = report["clicks"]
    env = report["environment"]
    rows = [("click-to-paint (pointerdown -> mask on screen)", "paint_ms"),
            ("request round trip (fetch)", "request_ms"),
            ("server click time (timings.total_ms)", "server_ms"),
            ("browser + HTTP overhead (paint - server)", "overhead_ms"),
            ("RLE decode in the page", "decode_ms"), ("overlay drawing", "draw_ms")]
    lines = ["# Web editor: click-to-paint latency in the browser", "",
             f"Command: `{command}`", "",
             f"{env['browser']} (headless, Selenium {env['selenium']}), viewport {report['viewport']}, "
             f"`ivos serve` on loopback: click model `{report['model']}` ({env['model_backend']}), "
             f"{report['server_threads']}. "
             f"{report['n_clicks']} clicks on frame 0 of the demo clip (480x272) after {report['warmup']} warm-up "
             f"clicks; the first on the object, then alternately + inside / - outside its ground truth. "
             f"Machine: {env['cpu']}, {env['cpus']} CPUs, load average {env['load_avg'][0]:.1f} at the end "
             "(shared with other jobs).", "",
             "| ms | median | p90 | min | max |", "|---|---|---|---|---|"]
    for label, key in rows:
        s = c[key]
        lines.append(f"| {label} | **{s['median']:.1f}** | {s['p90']:.1f} | {s['min']:.1f} | {s['max']:.1f} |"
                     if key == "paint_ms" else
                     f"| {label} | {s['median']:.1f} | {s['p90']:.1f} | {s['min']:.1f} | {s['max']:.1f} |")
    ratio = c["paint_ms"]["median"] / c["server_ms"]["median"]
    lines += ["", f"Median click-to-paint is **{c['paint_ms']['median']:.1f} ms** against "
              f"{c['server_ms']['median']:.1f} ms of server-side click time: **{ratio:.2f}x**, "
              f"{c['overhead_ms']['median']:.1f} ms for HTTP and JSON, the server's work outside the click "
              "pipeline (each video click saves the session's state), RLE decoding, drawing and the next "
              "animation frame.", "",
              "How it is measured: the page (engine/web/editor.js) takes `performance.now()` at the "
              "`pointerdown` event, sends the click, decodes the mask (COCO RLE), paints the overlay and "
              "records `performance.measure('ivos:click-to-paint')` in the next `requestAnimationFrame` "
              "callback; the benchmark reads the records from `window.ivosEditor.metrics.clicks`.", "",
              "Per click (ms):", "", "| # | +/- | paint | request | server | mask px |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(report["raw"]):
        lines.append(f"| {i + 1} | {'+' if r['positive'] else '-'} | {r['paint_ms']:.1f} | {r['request_ms']:.1f} | "
                     f"{r['server_ms']:.1f} | {r['area']} |")
    if report.get("screenshots"):
        s = report["screenshots"]
        lines += ["", f"Screenshots (docs/): {s['click']}, {s['propagation']}, {s['suggested']} "
                  f"(suggested frame {s['suggested_frame'] + 1})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ivos.bench.web_editor", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clicks", type=int, default=20, help="clicks measured (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="clicks before measuring, not counted")
    p.add_argument("--model", default="ivos-lite0", help="click bundle of the server")
    p.add_argument("--osvos-model", default="osvos-lite0", help="OSVOS bundle of the server")
    p.add_argument("--threads", type=int, default=0, help="server threads (0 = one per CPU)")
    p.add_argument("--finetune-steps", type=int, default=None, help="server fine-tuning steps (screenshots run)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--chromium", default=None)
    p.add_argument("--chromedriver", default=None)
    p.add_argument("--screenshots", type=Path, default=None, help="folder for the README's screenshots")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/web_editor.md"))
    args = p.parse_args(argv)

    found = find_browser(args.chromium, args.chromedriver)
    if found is None:
        print("web_editor: no Chromium + chromedriver: apt-get install chromium chromium-driver", file=sys.stderr)
        return 2
    command = "python -m ivos.bench.web_editor " + " ".join(argv if argv is not None else sys.argv[1:])
    server_args = ["--model", args.model, "--osvos-model", args.osvos_model, "--threads", str(args.threads)]
    if args.finetune_steps is not None:
        server_args += ["--finetune-steps", str(args.finetune_steps)]
    with tempfile.TemporaryDirectory(prefix="ivos-web-bench-") as tmp:
        tmp = Path(tmp)
        server = ServerProcess(tmp / "data", server_args).start()
        url = server.url
        driver = None
        try:
            driver = make_driver(*found, tmp / "downloads", width=args.width, height=args.height)
            open_demo(driver, url)
            def first_click_screenshot():
                args.screenshots.mkdir(parents=True, exist_ok=True)
                time.sleep(0.3)
                driver.save_screenshot(str(args.screenshots / "web_editor_click.png"))
            raw = measure_clicks(driver, click_sequence(args.clicks), warmup=args.warmup,
                                 after_first=first_click_screenshot if args.screenshots else None)
            for r in raw:
                r["overhead_ms"] = r["paint_ms"] - r["server_ms"]
            shots = screenshots(driver, args.screenshots, timeout=900) if args.screenshots else None
            report = {"command": command, "viewport": f"{args.width}x{args.height}", "model": args.model,
                      "osvos_model": args.osvos_model,
                      "server_threads": f"--threads {args.threads}" + (" (one per CPU)" if args.threads == 0 else ""),
                      "n_clicks": len(raw), "warmup": args.warmup,
                      "clicks": {k: stats([r[k] for r in raw])
                                 for k in ("paint_ms", "request_ms", "server_ms", "overhead_ms", "decode_ms",
                                           "draw_ms")},
                      "raw": raw, "screenshots": shots, "environment": environment(driver, url)}
        finally:
            if driver is not None:
                driver.quit()
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_markdown(report, command))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    c = report["clicks"]
    print(f"click-to-paint median {c['paint_ms']['median']:.1f} ms (p90 {c['paint_ms']['p90']:.1f}), server "
          f"{c['server_ms']['median']:.1f} ms, request {c['request_ms']['median']:.1f} ms -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
