"""The app in a real browser: Debian's Chromium driven by Playwright against a real Gradio
server on localhost, as a laptop (1366x768) and as a phone (390x844, touch). Everything is
asserted from the page itself: where results lie on the screen, what the header and the
errors say, the colours the browser computed. Screenshots go to the test's temp folder, or to
$MMSEARCH_SCREENSHOTS (how assets/screenshot*.png are made)."""

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
TIMEOUT_MS = int(os.environ.get("MMSEARCH_BROWSER_TIMEOUT_MS", 60_000))
SIZES = {"laptop": {"viewport": {"width": 1366, "height": 768}},
         "phone": {"viewport": {"width": 390, "height": 844}, "has_touch": True,
                   "is_mobile": True, "device_scale_factor": 2}}

if not os.path.exists(CHROMIUM):
    if os.environ.get("MMSEARCH_REQUIRE_BROWSER"):  # set by .ci/run: there it must run
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)

# Where each result lies, from the browser's layout: the rectangle of its tile and whether
# its caption shows all of its text (no clipping either way).
TILES = """() => [...document.querySelectorAll('#results .grid-container .thumbnail-item')]
  .map(t => { const r = t.getBoundingClientRect(); const c = t.querySelector('.caption-label');
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: c.innerText,
            cut: c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1}; })"""
# WCAG 2 contrast of an element's text colour on its background colour.
CONTRAST = """(sel) => { const e = document.querySelector(sel); const s = getComputedStyle(e);
  const lum = (c) => { const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const [a, b] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05); }"""


@pytest.fixture(scope="module")
def urls(demo_index, encoder, tmp_path_factory):
    from mmsearch.cli.demo import build_demo_index
    from mmsearch.stores import open_index

    folder_app = launch(Searcher(demo_index, encoder).warm(), port=free_port(), block=False)
    location, _ = build_demo_index(str(tmp_path_factory.mktemp("shop") / "shop.db"),
                                   progress=False, catalog=True)
    catalogue = open_index(location)
    shop_app = launch(Searcher(catalogue, encoder).warm(), port=free_port(), block=False)
    yield {"folder": f"http://127.0.0.1:{folder_app.server_port}/",
           "shop": f"http://127.0.0.1:{shop_app.server_port}/"}
    folder_app.close()
    shop_app.close()
    catalogue.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MMSEARCH_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module", params=list(SIZES))
def page(request, browser, urls, shots):
    context = browser.new_context(**SIZES[request.param])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(urls["folder"])
    page.size, page.shots, page.urls = request.param, shots, urls
    yield page
    context.close()


def header(page) -> str:
    return page.locator("#results-header").inner_text()


def search(page, words: str) -> list[dict]:
    """Type the words and press Enter (each test searches words the header does not already
    show, so the wait below sees the new answer)."""
    box = page.get_by_label("Describe the picture")
    box.fill(words)
    box.press("Enter")
    page.wait_for_function("w => document.querySelector('#results-header')?.innerText"
                           ".includes(w)", arg=words)
    page.locator("#results .caption-label").first.wait_for()
    return page.evaluate(TILES)


def shown(page) -> list[str]:
    return [t["text"] for t in page.evaluate(TILES)]


def assert_inside_the_screen(page, tiles: list[dict]) -> None:
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
    assert all(0 <= t["left"] and t["right"] <= width for t in tiles), "a result is off-screen"


def test_results_fill_the_screen_and_show_whole_names(page):
    tiles = search(page, "a red sneaker")
    assert len(tiles) == 24 and header(page).startswith("24 results for “a red sneaker”")
    assert_inside_the_screen(page, tiles)
    height = page.evaluate("window.innerHeight")
    on_screen = [t for t in tiles if t["top"] >= 0 and t["bottom"] <= height]
    if page.size == "phone":  # right after Enter, without scrolling
        assert on_screen and on_screen[0] is tiles[0]
    else:
        assert len(on_screen) >= 14, f"{len(on_screen)} results fully on screen"
    for t in tiles:  # the whole file name on its own line, nothing clipped
        assert not t["cut"] and re.fullmatch(r"item-\d{4}\.png", t["text"].split("\n")[0])
    top = label_of(tiles[0]["text"].split("\n")[0])
    assert (top["class"], top["colour"]) == ("sneaker", "red")
    assert 0 < float(tiles[0]["text"].split("\n")[1].split(" · ")[0]) <= 1
    # previews are served small, never the original files
    src = page.locator("#results .grid-container img").first.get_attribute("src")
    assert "/gradio_api/file=" in src and not src.endswith(tiles[0]["text"].split("\n")[0])
    page.screenshot(path=str(page.shots / f"search-{page.size}.png"))


def test_search_button_contrast_and_focus_ring(page):
    assert page.evaluate(CONTRAST, "#search-button") >= 4.5
    page.get_by_label("Describe the picture").focus()
    for _ in range(4):  # the keyboard gets there from the words box in a few steps
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "search-button":
            break
    ring = page.evaluate("(() => { const s = getComputedStyle(document.activeElement);"
                         " return [document.activeElement.id, s.outlineStyle, s.outlineWidth]; })()")
    assert ring[0] == "search-button" and ring[1] != "none" and float(ring[2][:-2]) >= 2


def test_dark_mode_keeps_the_contrast(browser, urls):
    context = browser.new_context(color_scheme="dark", **SIZES["laptop"])
    page = context.new_page()
    page.goto(urls["folder"] + "?__theme=dark")
    page.get_by_label("Describe the picture").wait_for()
    assert page.evaluate("document.body.classList.contains('dark') || "
                         "document.querySelector('.dark') !== null")
    assert page.evaluate(CONTRAST, "#search-button") >= 4.5
    context.close()


def test_the_opened_picture_carries_its_actions(page):
    third = page.locator("#results .grid-container .thumbnail-item").nth(2)
    name = third.locator(".caption-label").inner_text().split("\n")[0]
    third.click()  # opens the large picture and selects it
    page.locator("#results .preview").wait_for()
    page.wait_for_function("n => document.querySelector('#selected input')?.value.endsWith(n)",
                           arg=name)
    # the actions are on screen with the picture, and the keyboard is already on the first
    page.wait_for_function("document.activeElement?.innerText === 'Find similar'")
    box = page.locator("#results .preview button.custom-button", has_text="Find similar")
    assert box.bounding_box()["y"] >= 0 and box.bounding_box()["y"] < 100
    page.screenshot(path=str(page.shots / f"opened-{page.size}.png"))
    page.keyboard.press("Enter")
    page.wait_for_function("n => document.querySelector('#results-header')?.innerText"
                           ".includes('similar to ' + n)", arg=name)
    assert page.locator("#results .preview").count() == 0  # new results close the picture
    first = page.locator("#results .caption-label").first.inner_text()
    assert first.startswith(name + "\n1.000")  # the picture itself, then its neighbours
    assert page.locator("#selected input").input_value() == ""  # no stale selection


def test_liked_pictures_are_marked_and_counted(page):
    search(page, "a dress")
    page.locator("#results .grid-container .thumbnail-item").nth(1).click()
    name = page.locator("#results .preview .caption").inner_text().split("\n")[0]
    page.locator("#results .preview button.custom-button", has_text="More like this").click()
    page.wait_for_function("document.querySelector('#results-header').innerText"
                           ".includes('likes: 1')")
    marked = [t["text"] for t in page.evaluate(TILES) if "♥ liked" in t["text"]]
    assert [m.split("\n")[0] for m in marked] == [name]
    page.locator("#results-header button.chip", has_text="likes: 1").click()  # forget them
    page.wait_for_function("!document.querySelector('#results-header').innerText"
                           ".includes('likes:')")
    assert not any("liked" in t["text"] for t in page.evaluate(TILES))


def test_more_results_instead_of_a_slider(page):
    assert page.locator("input[type=range]").count() <= 1  # the minimum score only
    page.locator("#more-results").click()
    page.wait_for_function("document.querySelector('#results-header').innerText"
                           ".startsWith('48 results')")
    tiles = page.evaluate(TILES)
    assert len(tiles) == 48
    assert_inside_the_screen(page, tiles)


def test_an_empty_result_says_which_filter_and_clears_it(page):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    search(page, "a long dress")
    if not page.locator("#until input").is_visible():
        page.locator("#filters").click()
        page.locator("#until input").wait_for(state="visible")
    page.locator("#until input").fill("2000-01")
    page.locator("#until input").press("Tab")  # leaves the field, as a person does
    emptied = ("document.querySelector('#results-header .results-header')"
               "?.dataset.count === '0'")
    page.locator("#search-button").click()
    try:
        page.wait_for_function(emptied, timeout=15_000)
    except PlaywrightTimeout:
        # On a loaded CI machine a click milliseconds after the fill was seen to search with
        # the field's previous value (3 of ~10 full runs); a person is not that fast. Click
        # again: the search is the same, and the assertions below are unchanged. The field
        # is filled again too: the Filters section renders its fields when first opened,
        # and a value typed while it did was seen lost from the page's state.
        page.locator("#until input").fill("2000-01")
        page.locator("#until input").press("Tab")
        page.locator("#search-button").click()
        page.wait_for_function(emptied)
    why = page.locator("#why-empty").inner_text()
    assert "until 2000-01" in why and "leaves nothing" in why
    page.screenshot(path=str(page.shots / f"empty-{page.size}.png"))
    page.locator("#why-empty button.chip", has_text="clear until").click()
    page.wait_for_function("document.querySelector('#results-header').innerText"
                           ".startsWith('24 results for “a long dress”')")
    assert page.locator("#until input").input_value() == ""  # the field says so too
    assert "until" not in header(page)


def test_all_matches_newest_first_and_back(page):
    search(page, "a sneaker")
    if not page.locator("#show").is_visible():
        page.locator("#filters").click()
    page.locator("#show label", has_text="All matches").click()
    page.locator("#sort label", has_text="Newest first").click()
    page.locator("#search-button").click()
    page.wait_for_function("document.querySelector('#results-header').innerText"
                           ".startsWith('≈')")
    said = header(page)
    assert "all matches" in said and "newest first" in said
    n = int(re.match(r"≈(\d+) match", said).group(1))
    assert 10 < n < 100  # the demo's 29 sneakers and their near misses, not the whole index
    assert len(page.evaluate(TILES)) == n and not page.locator("#more-results").is_visible()
    for chip in ("all matches", "newest first"):
        page.locator("#results-header button.chip", has_text=chip).click()
        page.wait_for_function(f"!document.querySelector('#results-header').innerText"
                               f".includes('{chip}')")
    assert header(page).startswith("24 results")


def test_a_filter_error_shows_once_beside_the_field_and_keeps_the_results(page):
    before = shown(page)
    page.locator("#since input").fill("yesterday")
    page.locator("#search-button").click()
    page.locator("#filter-error .field-error").wait_for()
    assert "Cannot read the date 'yesterday'" in page.locator("#filter-error").inner_text()
    assert page.locator("text=/read the date/").count() == 1  # no toast, no copy per output
    assert shown(page) == before
    page.locator("#since input").fill("")
    page.locator("#search-button").click()
    page.locator("#filter-error .field-error").wait_for(state="detached")


def test_an_upload_error_names_the_file_not_a_server_path(page, tmp_path):
    before = shown(page)
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture at all")
    page.locator("#example input[type=file], input[type=file]").first.set_input_files(str(fake))
    page.wait_for_function("document.querySelector('#query-error')?.innerText.includes('fake.png')")
    said = page.locator("#query-error").inner_text()
    assert "/" not in said and "tmp" not in said, said
    assert shown(page) == before


def test_an_example_picture_shows_as_a_picture_and_finds_itself(page, tmp_path):
    example = demo_files(cls="bag")[3]
    upload = tmp_path / "my example.png"
    shutil.copy(example, upload)
    page.get_by_label("Describe the picture").fill("")
    page.locator("input[type=file]").first.set_input_files(str(upload))
    page.wait_for_function("document.querySelector('#results-header').innerText"
                           ".includes('like your picture')")
    chip = page.locator("#results-header button.chip", has_text="picture my example.png")
    assert chip.locator("img").evaluate("i => i.decode().then(() => i.naturalWidth > 0)")
    assert page.locator("#query-error .field-error").count() == 0
    found = page.evaluate(TILES)
    assert found[0]["text"].startswith(example.name + "\n")
    assert label_of(found[1]["text"].split("\n")[0])["class"] == "bag"
    chip.click()  # the picture goes; the chip with it
    page.wait_for_function("!document.querySelector('#results-header').innerText"
                           ".includes('my example.png')")


def test_duplicates_show_what_decides_which_copy_to_keep(page):
    page.get_by_role("tab", name="Duplicates").click()
    page.locator("#find-duplicates").click()
    page.locator("#group-count").get_by_text("groups of near-duplicates").wait_for()
    count = int(re.search(r"(\d+)", page.locator("#group-count").inner_text())[1])
    assert count >= 1  # the demo pictures hold garments the demo model cannot tell apart
    assert page.locator(".dup-group").count() == count
    card = page.locator(".dup-copy").first
    text = card.inner_text()
    assert re.search(r"item-\d{4}\.png", text) and os.sep in text  # name and folder
    assert re.search(r"\d+ × \d+ px", text) and re.search(r"\d kB|\d B", text)
    assert re.search(r"20\d\d-\d\d-\d\d", text)
    assert card.locator("img").evaluate("i => i.decode().then(() => i.naturalWidth > 0)")
    width = page.evaluate("window.innerWidth")
    boxes = page.evaluate("[...document.querySelectorAll('.dup-copy')].map(e => "
                          "e.getBoundingClientRect()).map(r => [r.left, r.right, r.width])")
    assert all(0 <= left and right <= width and w >= 140 for left, right, w in boxes)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(page.shots / f"duplicates-{page.size}.png"))


def test_index_tab_shows_stats(page):
    page.get_by_role("tab", name="Index").click()
    stats = page.locator("#stats").inner_text()
    assert re.search(r"\b300 pictures", stats) and "model demo" in stats
    assert "on disk" in stats and "last indexed 20" in stats
    page.get_by_role("tab", name="Search").click()


def test_product_tiles_show_price_and_brand_whole(page):
    page.goto(page.urls["shop"])
    box = page.get_by_label("What are you looking for?")
    box.fill("sepatu lari ringan merah")
    box.press("Enter")
    page.locator("#results .caption-label").first.wait_for()
    tiles = page.evaluate(TILES)
    assert_inside_the_screen(page, tiles)
    lines = page.evaluate("""() => [...document.querySelectorAll(
        '#results .grid-container .caption-label')].map(c => { const t = c.firstChild; const r = document.createRange();
        const end = t.textContent.indexOf('\\n'); r.setStart(t, 0); r.setEnd(t, end);
        const box = c.getBoundingClientRect(), line = r.getBoundingClientRect();
        return {first: t.textContent.slice(0, end), whole: line.bottom <= box.bottom + 1 &&
                line.right <= box.right + 1, lines: Math.round(box.height /
                parseFloat(getComputedStyle(c).lineHeight))}; })""")
    for line in lines:  # "Rp 397.000", never cut; the brand, then two lines of title
        assert re.fullmatch(r"Rp \d{1,3}(\.\d{3})*", line["first"]) and line["whole"]
        assert line["lines"] <= 4
    brands = [t["text"].split("\n")[1] for t in tiles]
    assert all(re.fullmatch(r"[A-Z]\w+", b) for b in brands), brands
    page.screenshot(path=str(page.shots / f"products-{page.size}.png"))


@pytest.mark.parametrize("where,said", [
    ("harga < 100", "There is no field harga here; the fields are brand, category"),
    ("price = 3", "write ==: 'price == 3'"),
    ("price < 1.250.000", "write 1250000 without thousands separators"),
])
def test_where_errors_speak_the_apps_language_beside_the_box(page, where, said):
    before = shown(page)
    page.locator("#where input").fill(where)
    page.locator("#where input").press("Enter")
    page.wait_for_function("s => document.querySelector('#query-error')?.innerText.includes(s)",
                           arg=said)
    text = page.locator("#query-error").inner_text()
    assert "--where" not in text and page.locator(f"text={said}").count() == 1
    assert shown(page) == before


@pytest.mark.parametrize("where,said", [
    ("price < 200.000", "200.000 reads as 200: for Rp 200.000 write 200000"),
    ("brand == 'minuet'", "did you mean 'Minuet'?"),
])
def test_an_empty_product_list_says_what_to_fix(page, where, said):
    page.locator("#where input").fill(where)
    page.locator("#where input").press("Enter")
    page.wait_for_function("s => document.querySelector('#why-empty')?.innerText.includes(s)",
                           arg=said)
    assert page.locator("#results-header .results-header").get_attribute("data-count") == "0"
    assert page.locator("#query-error .field-error").count() == 0


@pytest.fixture(scope="module")
def video_url(encoder, tmp_path_factory):
    """An app over a folder with one video (boot, trouser, bag: 2 s each; VP9 in WebM, which
    Chromium plays) and a few pictures."""
    from indexer.pipeline import index_paths
    from mmsearch.config import IndexLocation
    from mmsearch.stores import open_index
    from test_video_index import best_of, make_video

    folder = tmp_path_factory.mktemp("videos")
    shots = [demo_files(cls="boot")[0], best_of(encoder, "trouser", "a trouser"),
             demo_files(cls="bag")[0]]
    make_video(folder / "market.webm", shots, codec="libvpx-vp9")
    for f in demo_files(8):  # no trouser as a still: one may outscore the scene's frame,
        if label_of(f)["class"] != "trouser":  # a re-encoded 64 px copy of a trouser photo
            shutil.copy2(f, folder / f.name)
    location = IndexLocation.resolve(db=tmp_path_factory.mktemp("video_db") / "v.db")
    index = open_index(location, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim)
    index_paths([str(folder)], index, encoder, progress=False, ocr=False)
    app = launch(Searcher(index, encoder).warm(), port=free_port(), block=False)
    yield f"http://127.0.0.1:{app.server_port}/"
    app.close()
    index.close()


def test_a_video_result_shows_its_moment_and_plays_from_it(browser, video_url, tmp_path):
    context = browser.new_context(**SIZES["laptop"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(video_url)
    try:
        tiles = search(page, "a trouser")
        assert tiles[0]["text"].startswith("market.webm @ 0:02")  # its frame, with its time
        page.locator("#results .grid-container .thumbnail-item").first.click()
        player = page.locator("#player video#video-player")
        player.wait_for()
        page.wait_for_function("document.querySelector('#video-player').readyState >= 1")
        start = page.evaluate("document.querySelector('#video-player').currentTime")
        assert abs(start - 2.0) <= 0.5  # the media fragment put it at the scene
        duration = page.evaluate("document.querySelector('#video-player').duration")
        assert abs(duration - 6.0) <= 0.5
        # on screen and on top: what is at its centre is the video itself
        page.wait_for_function("() => { const v = document.querySelector('#video-player');"
                               "const r = v.getBoundingClientRect(); return r.top >= 0 && "
                               "r.bottom <= window.innerHeight && document.elementFromPoint("
                               "(r.left + r.right) / 2, (r.top + r.bottom) / 2) === v; }")
        page.screenshot(path=str(tmp_path / "video.png"))
    finally:
        context.close()
