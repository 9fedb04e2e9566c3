"""One click three ways, in one run: in process (``ImagePredictor.add_click``), over ivos's own
HTTP API (``POST /v1/images/{id}/clicks``) and through Label Studio (its
``/api/ml/{id}/interactive-annotating``, which calls ``ivos serve``'s ``/label-studio/predict``),
on the same image with the same simulated clicks; optionally a screenshot of Label Studio's
labelling page with the ivos mask (docs/label_studio.png).

    python -m ivos.bench.label_studio [--image banana1] [--clicks 6] [--rounds 3]
        [--out benchmarks/results/label_studio.md] [--screenshot docs/label_studio.png]

Needs ``scripts/setup_label_studio.sh`` (Label Studio in ``.venv-label-studio``) and the data
sets (a GrabCut image). Each round: a fresh session per method, then the clicks one at a time;
the methods take turns in a different order each round. Times are per click from the
client's side; click 1 (which for Label Studio also downloads the task image into a new ivos
session) is reported apart from clicks 2..N.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ._common import environment, environment_line, percentiles, write_report

API_KEY = "ivos-label-studio-bench-key"


def click_sequence(predictor, image: np.ndarray, gt: np.ndarray, n: int) -> list[tuple[float, float, bool]]:
    """The RITM simulated user's first ``n`` clicks on ``gt`` with this predictor."""
    from ivos.evaluation.clicker import next_click

    predictor.set_image(image)
    made, pred = [], None
    for k in range(n):
        click = next_click(gt, pred, is_first=k == 0, clicked=made)
        if click is None:
            break
        made.append(click)
        pred = predictor.add_click(click.x, click.y, click.positive).mask.astype(bool)
    return [(float(c.x), float(c.y), bool(c.positive)) for c in made]


def keypoints(clicks, w: int, h: int) -> list[dict]:
    return [{"type": "keypointlabels", "from_name": "click", "to_name": "image", "original_width": w,
             "original_height": h, "image_rotation": 0, "is_positive": p,
             "value": {"x": 100.0 * x / w, "y": 100.0 * y / h, "width": 0.6, "keypointlabels": ["Object"]}}
            for x, y, p in clicks]


def png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def run(args) -> dict:
    import httpx

    import ivos
    from ivos.evaluation.datasets import grabcut
    from ivos.serve.testing import LABEL_STUDIO_CONFIG, LabelStudioProcess, ServerProcess

    root = ivos.datasets_root(args.data_root)
    data = grabcut(root)
    sample = data[data.names.index(args.image)]
    image, gt = sample.image, sample.gt
    h, w = gt.shape
    local = ivos.ImagePredictor(ivos.load(args.model, threads=args.threads))
    clicks = click_sequence(local, image, gt, args.clicks)
    work = Path(args.work)
    times: dict[str, list[list[float]]] = {"in process": [], "ivos HTTP": [], "Label Studio": []}
    with LabelStudioProcess(work / "ls-data", server=args.server, log_level=args.log_level) as ls:
        server = ServerProcess(work / "ivos-data", ["--model", args.model, "--threads", str(args.threads),
                                                    "--api-key", API_KEY]).start()
        try:
            pid = ls.api("POST", "/api/projects", json={"title": "ivos", "label_config": LABEL_STUDIO_CONFIG}).json()["id"]
            ls.api("POST", f"/api/projects/{pid}/import", files={"file0": (f"{args.image}.png", png(image), "image/png")})
            task = ls.api("GET", f"/api/tasks?project={pid}").json()["tasks"][0]["id"]
            ml = ls.api("POST", "/api/ml", json={"url": f"{server.url}/label-studio", "project": pid,
                                                 "is_interactive": True, "auth_method": "BASIC_AUTH",
                                                 "basic_auth_user": "label-studio", "basic_auth_pass": API_KEY}).json()["id"]
            http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)

            def in_process() -> list[float]:
                local.set_image(image)
                out = []
                for x, y, p in clicks:
                    t0 = time.perf_counter()
                    local.add_click(x, y, p)
                    out.append(time.perf_counter() - t0)
                return out

            def over_http() -> list[float]:
                sid = http.post("/v1/images", files={"image": ("i.png", png(image), "image/png")}).json()["session_id"]
                out = []
                for x, y, p in clicks:
                    t0 = time.perf_counter()
                    r = http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": p})
                    out.append(time.perf_counter() - t0)
                    r.raise_for_status()
                http.delete(f"/v1/images/{sid}")
                return out

            def through_label_studio() -> list[float]:
                out = []
                for k in range(1, len(clicks) + 1):
                    t0 = time.perf_counter()
                    r = ls.api("POST", f"/api/ml/{ml}/interactive-annotating",
                               json={"task": task, "context": {"result": keypoints(clicks[:k], w, h)}})
                    out.append(time.perf_counter() - t0)
                    if "errors" in r.json():
                        raise RuntimeError(f"Label Studio: {r.json()['errors']}")
                return out

            methods = {"in process": in_process, "ivos HTTP": over_http, "Label Studio": through_label_studio}
            names = list(methods)
            for rnd in range(args.rounds):
                order = names[rnd % 3:] + names[:rnd % 3]
                for name in order:
                    times[name].append(methods[name]())
                    print(f"round {rnd + 1}: {name} done", file=sys.stderr)
            server_ms = server_means(http.get("/metrics").text)
            if args.screenshot:
                last = ls.api("POST", f"/api/ml/{ml}/interactive-annotating",
                              json={"task": task, "context": {"result": keypoints(clicks, w, h)}}).json()["data"]
                ls.api("POST", f"/api/tasks/{task}/annotations", json={"result": last["result"], "lead_time": 3.0})
                screenshot(ls, pid, task, Path(args.screenshot))
        finally:
            server.stop()
    later = {k: [t for rnd in v for t in rnd[1:]] for k, v in times.items()}
    # click 1: a new session (Label Studio's first round: the image downloaded into one; its later
    # rounds begin with the task's clicks of the round before, undone to the first)
    first = {k: [rnd[0] for rnd in v] for k, v in times.items()}
    return {"image": args.image, "size": f"{w}x{h}", "clicks": clicks, "rounds": args.rounds, "server_ms": server_ms,
            "per_click_s": {k: percentiles(v, scale=1e3, suffix="_ms") for k, v in later.items()},
            "first_click_s": {k: percentiles(v, scale=1e3, suffix="_ms") for k, v in first.items()},
            "raw_s": times}


ROUTES = {"ivos HTTP": ("POST", "/v1/images/{session_id}/clicks"), "Label Studio": ("POST", "/label-studio/predict")}


def server_means(metrics: str) -> dict[str, float]:
    """Mean ms ivos spent per request of each method's route (its Prometheus histogram: sum /
    count, every request of the run, the first clicks included)."""
    import re

    out = {}
    for name, (method, route) in ROUTES.items():
        vals = {}
        for part in ("sum", "count"):
            m = re.search(rf'ivos_http_request_seconds_{part}{{method="{method}",route="{re.escape(route)}"}} ([0-9.e+-]+)',
                          metrics)
            vals[part] = float(m.group(1)) if m else float("nan")
        out[name] = 1e3 * vals["sum"] / vals["count"] if vals.get("count") else float("nan")
    return out


def screenshot(ls, project: int, task: int, path: Path) -> None:
    """Label Studio's labelling page of ``task`` (with its annotation) in headless Chromium."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from .web_editor import find_browser, make_driver

    found = find_browser()
    if found is None:
        raise RuntimeError("no chromium + chromedriver for the screenshot (apt-get install chromium chromium-driver)")
    driver = make_driver(*found, path.parent, width=1280, height=800)
    try:
        driver.get(ls.url + "/user/login/")
        driver.find_element(By.NAME, "email").send_keys(ls.USER)
        driver.find_element(By.NAME, "password").send_keys(ls.PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
        WebDriverWait(driver, 60).until(lambda d: "/user/login" not in d.current_url)
        driver.get(f"{ls.url}/projects/{project}/data?task={task}")
        WebDriverWait(driver, 120).until(ec.presence_of_element_located((By.CSS_SELECTOR, "canvas")))
        time.sleep(8)  # the image, then the brush layer, render after the canvas appears
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()


def markdown(report: dict, command: str, env: dict) -> str:
    per, first = report["per_click_s"], report["first_click_s"]
    http, ls = per["ivos HTTP"]["p50_ms"], per["Label Studio"]["p50_ms"]
    lines = ["# One click three ways: in process, ivos HTTP, through Label Studio", "",
             f"Command: `{command}`", "", f"Environment: {environment_line(env)}", "",
             f"GrabCut `{report['image']}` ({report['size']}), the RITM simulated user's first "
             f"{len(report['clicks'])} clicks, {report['rounds']} rounds (methods alternating); click 2..N per method, "
             "from the client's side (Label Studio: its `/api/ml/{id}/interactive-annotating`, which sends ivos "
             "all the task's keypoints; ivos adds the new one).", "",
             "| method | clicks | p50 ms | p90 ms | first click p50 ms |", "|---|---:|---:|---:|---:|"]
    for name, p in per.items():
        lines.append(f"| {name} | {p['n']} | {p['p50_ms']:.1f} | {p['p90_ms']:.1f} | {first[name]['p50_ms']:.1f} |")
    server = report["server_ms"]
    lines += ["", f"**Label Studio / ivos HTTP at p50: {ls / http:.2f}x** ({ls:.1f} vs {http:.1f} ms; in process "
              f"{per['in process']['p50_ms']:.1f} ms).", "",
              f"Inside ivos (its request histogram, every request of the run): {server['ivos HTTP']:.1f} ms per "
              f"`/v1/images/{{id}}/clicks`, {server['Label Studio']:.1f} ms per `/label-studio/predict` (the first "
              "requests, which download the image, included). The rest of Label Studio's round trip, about "
              f"{ls - server['Label Studio']:.0f} ms, is Label Studio's own (its Django request, the task serialised "
              "with its annotations, a new HTTP connection to the backend per call)."]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", default="banana1", help="GrabCut image name (default banana1)")
    p.add_argument("--clicks", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default="ivos-lite0")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--work", default="/tmp/ivos-bench-label-studio", help="scratch folder (Label Studio's data)")
    p.add_argument("--out", type=Path, default=None, help="markdown report")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--screenshot", type=Path, default=None, help="PNG of Label Studio's page with the mask")
    p.add_argument("--server", default="runserver", choices=("runserver", "gunicorn"),
                   help="how Label Studio is served (ivos.serve.testing.LABEL_STUDIO_SERVERS)")
    p.add_argument("--log-level", default="DEBUG", help="Label Studio's LOG_LEVEL (its default: DEBUG)")


def main(argv: list[str] | None = None) -> int:
    import shutil

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    report = run(args)
    command = "python -m ivos.bench.label_studio " + shlex.join(sys.argv[1:] if argv is None else argv)
    env = environment(threads=args.threads)
    text = markdown(report, command, env)
    print(text)
    write_report(markdown=(args.out, text), json_data=(args.json, {"command": command, "environment": env, **report}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
