"""Pieces of page both kinds of index use: the search bar, the results (header, grid, the
opened picture's actions, "More results") and the hidden parts the HTTP API calls."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui.style import CHIP_JS, CLOSE_PREVIEW

DEFAULT_K = 24
# The page's events run one at a time, in the order they were sent: with the queue's default
# of 4 at once, a slow first search (words typed, Enter) answered after the Search click
# that followed it and put its older results and filters back (seen in test_browser). A
# search takes tens of milliseconds, so one at a time costs little; the API is not limited.
IN_ORDER = {"concurrency_limit": 1, "concurrency_id": "page"}
# the player sits below the results (over the opened frame while it is open, ui.style): bring
# it on screen when a video was opened
SHOW_PLAYER = "() => document.getElementById('video-player')?.scrollIntoView({block: 'center'})"
PICTURE_TYPES = ["image", ".heic", ".heif"]


@dataclass
class QueryForm:
    query: gr.Textbox
    second: gr.Textbox   # "without" words (folders) or the --where filter (catalogues)
    example: gr.UploadButton
    go: gr.Button
    error: gr.HTML       # what went wrong with the words, the second box or the picture


def query_form(label: str, placeholder: str, second: dict) -> QueryForm:
    """One search bar: the words, the second box (`second`: its gr.Textbox arguments), an
    example-picture button and Search, side by side (stacked on a phone); errors under it."""
    with gr.Row(elem_id="search-bar", equal_height=False):
        query = gr.Textbox(label=label, autofocus=True, placeholder=placeholder, scale=4,
                           max_lines=1, elem_id="query")
        extra = gr.Textbox(value="", scale=2, max_lines=1, **second)
        # an upload button, not gr.Image: mmsearch decodes the picture, so a bad upload gets
        # mmsearch's one-line reason (with the file's name) instead of a component error
        example = gr.UploadButton("Example picture…", file_types=PICTURE_TYPES,
                                  type="filepath", scale=1, min_width=120, elem_id="example")
        go = gr.Button("Search", variant="primary", scale=1, min_width=120,
                       elem_id="search-button")
    error = gr.HTML("", elem_id="query-error")
    return QueryForm(query, extra, example, go, error)


@dataclass
class ResultsPanel:
    header: gr.HTML      # "N results · what · chips"; a chip's click says which to clear
    gallery: gr.Gallery
    more_results: gr.Button
    selected: gr.Textbox
    similar: gr.Button   # these three sit in the opened picture's toolbar
    more: gr.Button
    less: gr.Button
    keys: gr.State       # the shown results' paths or product ids, in order
    request: gr.State    # what produced them (ui.page), to ask again for more
    player: gr.HTML      # a selected video, playing from its moment (ui.media)


def results_panel(what: str, similar_label: str) -> ResultsPanel:
    header = gr.HTML("", elem_id="results-header", js_on_load=CHIP_JS)
    similar = gr.Button(similar_label, elem_id="similar", size="sm")
    more = gr.Button("More like this", elem_id="more", size="sm")
    less = gr.Button("Less like this", elem_id="less", size="sm")
    # no "share" button: it needs a Hugging Face Space and failed here with a TypeError
    gallery = gr.Gallery(label=f"{what.capitalize()}s: open one to see it large",
                         show_label=False, elem_id="results",
                         elem_classes=["results", "products" if what == "product" else "pictures"],
                         columns=6, height="auto", allow_preview=True, object_fit="contain",
                         buttons=[similar, more, less, "download", "fullscreen"])
    more_results = gr.Button("More results", elem_id="more-results", visible=False)
    selected = gr.Textbox(label=f"Selected {what}", interactive=False, buttons=["copy"],
                          elem_id="selected", max_lines=1)
    player = gr.HTML("", elem_id="player")
    return ResultsPanel(header, gallery, more_results, selected, similar, more, less,
                        gr.State([]), gr.State({}), player)


def mark(selected: str, liked: list[str], disliked: list[str], more: bool,
         what: str = "result") -> tuple[list[str], list[str]]:
    """Add the selected result to "more like this" (or "less"), out of the other list."""
    if not selected:
        raise gr.Error(f"click a {what} first", print_exception=False)
    liked = [p for p in liked if p != selected]
    disliked = [p for p in disliked if p != selected]
    (liked if more else disliked).append(selected)
    return liked, disliked


def on_select(result_keys: list[str], evt: gr.SelectData) -> str:
    """A click on a result: select it (its path or id)."""
    return result_keys[evt.index] if 0 <= evt.index < len(result_keys) else ""


def script_endpoints(search_text, search_image, k: gr.Slider, outputs: list) -> None:
    """`/search_text` (words) and `/search_image` (a picture) for scripts (gradio_client): two
    hidden inputs the page never changes; the API calls their events directly."""
    text_only = gr.Textbox(visible=False)
    picture_only = gr.File(visible=False, type="filepath")
    text_only.change(search_text, [text_only, k], outputs, api_name="search_text")
    picture_only.upload(search_image, [picture_only, k], outputs, api_name="search_image")


@dataclass
class ApiParts:
    """Hidden inputs and outputs of the HTTP API's events (gradio_client): the page never
    changes them, so the API keeps its parameters (k, example) and its gallery output while
    the page shows its own."""
    k: gr.Number
    example: gr.File
    gallery: gr.Gallery
    keys: gr.State


def api_parts() -> ApiParts:
    return ApiParts(gr.Number(DEFAULT_K, visible=False, precision=0),
                    gr.File(visible=False, type="filepath", file_types=PICTURE_TYPES),
                    gr.Gallery(visible=False), gr.State([]))


def wire_results(panel: ResultsPanel, outs: list, fields: list, marks: list, *, respond,
                 similar, similar_inputs: list, marker, clear_chip, page_size: int,
                 player=None) -> None:
    """The results panel's own events, the same on both tabs: more results, opening a
    result, Find similar, More/Less like this (`marks`: the liked and disliked states), and
    a chip's ×; page events answer one at a time, in order (IN_ORDER). `player(key)`: the
    player's HTML for a selected result (a video's), when the tab plays videos."""
    panel.more_results.click(lambda req: respond({**req, "k": int(req.get("k") or page_size)
                                                  + page_size}),
                             [panel.request], outs, api_name=False, **IN_ORDER)
    chosen = panel.gallery.select(on_select, [panel.keys], [panel.selected], api_name=False,
                                  **IN_ORDER)
    if player is not None:
        chosen.then(player, [panel.selected], [panel.player], api_name=False, **IN_ORDER).then(
            None, js=SHOW_PLAYER)
        panel.gallery.change(lambda: "", None, [panel.player], api_name=False)
    panel.similar.click(similar, [panel.selected, *similar_inputs], outs, js=CLOSE_PREVIEW,
                        api_name=False, **IN_ORDER)
    for button, more_ in ((panel.more, True), (panel.less, False)):
        button.click(marker(more_), [panel.selected, *fields], [*marks, *outs],
                     js=CLOSE_PREVIEW, api_name=False, **IN_ORDER)
    panel.header.click(clear_chip, [panel.request], [*fields, *outs], js=CLOSE_PREVIEW,
                       api_name=False, **IN_ORDER)
