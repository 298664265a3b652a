"""Pieces of page both kinds of index use: the example-picture drop, the search controls,
the results gallery and the row of actions on a selected result."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

DEFAULT_K = 24


def example_picture() -> gr.File:
    # gr.File, not gr.Image: the picture is decoded by mmsearch, so a bad upload gets
    # mmsearch's one-line reason instead of a component error
    return gr.File(label="…and/or an example picture", type="filepath",
                   file_types=["image", ".heic", ".heif"], height=150)


@dataclass
class QueryForm:
    query: gr.Textbox
    second: gr.Textbox   # "without" words (folders) or the --where filter (catalogues)
    example: gr.File
    go: gr.Button
    k: gr.Slider
    min_score: gr.Slider


def query_form(label: str, placeholder: str, second: dict) -> QueryForm:
    """The words box with a second box under it (`second`: its gr.Textbox arguments), the
    example picture beside them, and the search controls below."""
    with gr.Row():
        with gr.Column(scale=3):
            query = gr.Textbox(label=label, autofocus=True, placeholder=placeholder)
            extra = gr.Textbox(value="", **second)
        with gr.Column(scale=1):
            example = example_picture()
    return QueryForm(query, extra, example, *search_controls())


def search_controls() -> tuple[gr.Button, gr.Slider, gr.Slider]:
    """(Search button, number of results, minimum score), in one row."""
    with gr.Row():
        go = gr.Button("Search", variant="primary", scale=1)
        k = gr.Slider(1, 100, value=DEFAULT_K, step=1, label="Results", scale=2)
        min_score = gr.Slider(0, 1, value=0, step=0.01, label="Minimum score", scale=2)
    return go, k, min_score


def results_gallery(what: str) -> gr.Gallery:
    return gr.Gallery(label=f"{what}: click one to see it large and select it",
                      elem_id="results", columns=6, height="auto", allow_preview=True,
                      object_fit="contain")


@dataclass
class SelectionRow:
    selected: gr.Textbox
    similar: gr.Button
    more: gr.Button
    less: gr.Button
    forget: gr.Button
    feedback: gr.Markdown


def selection_row(what: str, similar_label: str) -> SelectionRow:
    """The selected result (copyable) and what to do with it."""
    with gr.Row():
        selected = gr.Textbox(label=f"Selected {what}", interactive=False, buttons=["copy"],
                              scale=3, elem_id="selected")
        similar = gr.Button(similar_label, scale=1, elem_id="similar")
        more = gr.Button("More like this", scale=1, elem_id="more")
        less = gr.Button("Less like this", scale=1, elem_id="less")
        forget = gr.Button("Forget likes", scale=1, size="sm")
    return SelectionRow(selected, similar, more, less, forget, gr.Markdown(elem_id="feedback"))


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
