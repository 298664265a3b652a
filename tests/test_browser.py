"""The app in a real browser: Debian's Chromium driven by Playwright against a real Gradio
server on localhost. Screenshots go to the test's temp folder, or to $MMSEARCH_SCREENSHOTS
(how assets/screenshot.png is made)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import demo_files, label_of
from mmsearch.search import Searcher
from test_app import free_port
from ui.app import launch

CHROMIUM = os.environ.get("MMSEARCH_CHROMIUM", "/usr/bin/chromium")
# Playwright cannot download browsers here; these flags keep Chromium quiet and offline.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000

if not os.path.exists(CHROMIUM):
    if os.environ.get("MMSEARCH_REQUIRE_BROWSER"):  # set by .ci/run: there it must run
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def page(demo_index, encoder, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    searcher = Searcher(demo_index, encoder).warm()
    port = free_port()
    app = launch(searcher, port=port, block=False)
    shots = Path(os.environ.get("MMSEARCH_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{port}/")
        page.shots = shots
        yield page
        browser.close()
    app.close()


def captions(page) -> list[str]:
    return page.locator("#results .caption-label").all_inner_texts()


def wait_for_results(page, first_caption: str | None = None) -> list[str]:
    """Wait until the gallery shows results (and, if given, this first caption)."""
    page.locator("#results .caption-label").first.wait_for()
    if first_caption is not None:
        page.wait_for_function(
            "c => document.querySelector('#results .caption-label')?.innerText.includes(c)",
            arg=first_caption)
    return captions(page)


def test_type_a_query_and_see_the_gallery_fill(page):
    box = page.get_by_label("Describe the picture")
    box.fill("a red sneaker")
    box.press("Enter")
    found = wait_for_results(page)
    assert len(found) == 24
    score, name = found[0].split(" · ")
    assert 0 < float(score) <= 1
    assert (label_of(name)["class"], label_of(name)["colour"]) == ("sneaker", "red")
    # previews are served small, never the original files
    src = page.locator("#results img").first.get_attribute("src")
    assert "/gradio_api/file=" in src and not src.endswith(name)
    page.screenshot(path=str(page.shots / "1-text-query.png"))


def test_click_a_result_then_find_similar(page):
    first_name = captions(page)[0].split(" · ")[1]
    third = page.locator("#results .thumbnail-item").nth(2)
    third_name = third.locator(".caption-label").inner_text().split(" · ")[1]
    third.click()  # opens the large preview and selects the picture
    page.wait_for_function(
        "n => document.querySelector('#selected textarea')?.value.endsWith(n)", arg=third_name)
    page.locator("#results .preview").wait_for()
    page.screenshot(path=str(page.shots / "2-preview.png"))
    page.locator("#similar").click()
    found = wait_for_results(page, first_caption=third_name)
    assert page.locator("#results .preview").count() == 0  # new results close the preview
    assert found[0].startswith("1.000 · ")  # the picture itself, then its neighbours
    assert first_name != third_name
    page.screenshot(path=str(page.shots / "3-similar.png"))


def test_less_like_this_records_feedback(page):
    page.locator("#less").click()
    feedback = page.locator("#feedback")
    feedback.get_by_text("less like:").wait_for()
    assert "less like: " in feedback.inner_text()


def test_upload_an_example_picture(page, tmp_path):
    example = demo_files(cls="bag")[3]
    upload = tmp_path / "my example.png"
    shutil.copy(example, upload)
    page.get_by_label("Describe the picture").fill("")
    page.locator("button", has_text="Forget likes").click()
    page.locator("input[type=file]").first.set_input_files(str(upload))
    found = wait_for_results(page, first_caption=example.name)
    assert float(found[0].split(" · ")[0]) > 0.99
    assert label_of(found[1].split(" · ")[1])["class"] == "bag"
    page.screenshot(path=str(page.shots / "4-example-picture.png"))


def test_duplicates_tab_shows_groups(page):
    page.get_by_role("tab", name="Duplicates").click()
    page.locator("#find-duplicates").click()
    page.locator("#group-count").get_by_text("groups of near-duplicates").wait_for()
    count = int(re.search(r"(\d+)", page.locator("#group-count").inner_text())[1])
    assert count >= 1  # the demo pictures hold garments the demo model cannot tell apart
    page.locator(".duplicate-group").first.wait_for()
    page.wait_for_function(f"document.querySelectorAll('.duplicate-group').length == {count}")
    assert page.locator(".duplicate-group img").count() >= 2 * count
    page.screenshot(path=str(page.shots / "5-duplicates.png"))


def test_index_tab_shows_stats(page):
    page.get_by_role("tab", name="Index").click()
    stats = page.locator("#stats").inner_text()
    assert re.search(r"\b300 pictures", stats) and "model demo" in stats
    assert "on disk" in stats and "last indexed 20" in stats
    page.screenshot(path=str(page.shots / "6-index.png"))
