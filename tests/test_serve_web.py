"""The examiner's page end-to-end in headless Chromium (Debian's chromium + Python Playwright):
upload two views, crop one, add words, search, open a patent, export, save the record, and a
screenshot that is not blank. The page is served by the same FastAPI app the Serve ingress runs
(uvicorn in a thread, in-process model and Milvus Lite)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from priorsight.config import MilvusConfig
from priorsight.manifest import iter_drawings

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian chromium not installed "
                                "(apt-get install -y chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    import uvicorn

    from services.backends import local_app
    from services.sample import sample_setup

    root = tmp_path_factory.mktemp("serve_web")
    config, encoder = sample_setup(root, MilvusConfig(target="lite", uri=str(root / "lite.db")), text=True)
    app = local_app(config, encoder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield {"url": f"http://127.0.0.1:{port}", "config": config, "root": root,
           "drawings": {d.drawing_id: d for d in iter_drawings(config.manifest)}}
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(site["root"] / "chromium-profile"), executable_path=chromium_path(), headless=True,
            args=CHROMIUM_FLAGS, accept_downloads=True, viewport={"width": 1280, "height": 900})
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        yield pg
        ctx.close()


def test_upload_crop_search_detail_export_and_screenshot(site, page):
    d1, d2 = site["drawings"]["USD0900003-1"], site["drawings"]["USD0900003-2"]
    page.goto(site["url"] + "/")
    assert "PriorSight" in page.title()
    page.wait_for_function("document.getElementById('model-info').textContent.includes('demo-small')")
    page.set_input_files("#files", [d1.image_uri, d2.image_uri])
    assert page.locator("#thumbs li").count() == 2

    # crop the first drawing: drag a box over most of it
    page.locator("#thumbs li").nth(0).get_by_role("button", name="crop").click()
    box = page.locator("#crop-img").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.9, steps=5)
    page.mouse.up()
    page.click("#crop-done")
    assert page.locator("#thumbs li").nth(0).get_by_role("button", name="cropped ✓").count() == 1

    page.fill("#text", "ornamental star design")
    page.fill("#date-from", "2020-01-01")
    page.click("#search")
    page.wait_for_selector(".patent-card")
    cards = page.locator(".patent-card")
    assert cards.count() >= 1
    assert cards.nth(0).get_attribute("data-patent") == d1.patent_id  # the uncropped view is indexed: cosine 1
    page.wait_for_function("[...document.querySelectorAll('.patent-card img')].every(i => i.complete && i.naturalWidth > 0)")
    assert "result(s)" in page.inner_text("#summary")
    record = json.loads(page.text_content("#record"))  # inside a closed <details>
    assert record["text"] == "ornamental star design" and record["filters"]["date_from"] == "2020-01-01"
    crop = record["images"][0]["crop"]
    assert crop is not None and 0.05 < crop["x0"] < 0.2 and 0.8 < crop["x1"] < 0.95
    assert record["images"][1]["crop"] is None

    shot = site["root"] / "results.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("PRIORSIGHT_KEEP_SCREENSHOT"):  # to look at it
        shutil.copy(shot, os.environ["PRIORSIGHT_KEEP_SCREENSHOT"])
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert img.std() > 20  # not a blank page: text, cards, drawings
    dark = (img < 100).mean()
    assert 0.005 < dark < 0.6

    # a patent's detail: all its views and metadata
    cards.nth(0).click()
    page.wait_for_selector("#detail:not([hidden]) figure")
    n_views = sum(1 for d in site["drawings"].values() if d.patent_id == d1.patent_id)
    assert page.locator("#detail-body figure").count() == n_views
    assert d1.locarno_class in page.inner_text("#detail-body")
    page.click("#detail-close")

    with page.expect_download() as dl:
        page.click("#export-json")
    exported = json.loads(Path(dl.value.path()).read_text())
    assert exported["record"]["query_id"] == record["query_id"] and exported["results"]
    with page.expect_download() as dl:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert rows and rows[0]["patent_id"] == d1.patent_id and rows[0]["rank"] == "1"
    with page.expect_download() as dl:
        page.click("#save-record")
    saved = json.loads(Path(dl.value.path()).read_text())
    assert saved["model"]["name"] == "demo-small" and saved["indexes"] == {"sample": "drawings"}


def test_a_non_image_upload_shows_the_error(site, page):
    page.goto(site["url"] + "/")
    bad = site["root"] / "claims.png"
    bad.write_text("1. The ornamental design for a lamp, as shown.")
    page.set_input_files("#files", [str(bad)])
    page.click("#search")
    page.wait_for_selector("#status.error")
    assert "cannot decode" in page.inner_text("#status")
