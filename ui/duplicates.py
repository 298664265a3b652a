"""The Duplicates tab: each group of copies as cards with what decides which copy to keep
(folder and name, file size, pixel size, date), drawn as HTML (every value escaped)."""

from __future__ import annotations

import html
import os
import time
from urllib.parse import quote

import gradio as gr

from mmsearch.filters import is_scene
from mmsearch.moments import resolve
from ui.handlers import MAX_GROUPS, Handlers, human_bytes


def copy_card(member: dict, row: dict | None, preview: str | None) -> str:
    path = member["file"]
    folder, name = os.path.split(path)
    facts = []
    if row:
        if row.get("width") and row.get("height"):
            facts.append(f"{int(row['width'])} × {int(row['height'])} px")
        if row.get("size") is not None:
            facts.append(human_bytes(int(row["size"])))
        when = row.get("taken") or row.get("mtime")
        if when:
            facts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(float(when))))
    # a relative URL (works behind a proxy's path); the preview folder is the one served
    img = (f'<img alt="{html.escape(name)}" loading="lazy" '
           f'src="gradio_api/file={quote(preview)}">') if preview else ""
    return (f'<figure class="dup-copy">{img}<figcaption><div class="path">{html.escape(name)}'
            f'</div><div class="folder">{html.escape(folder)}</div>'
            f'<div class="facts">{html.escape(" · ".join(facts))}</div>'
            f'<div class="score">similarity {member["score"]:.4f}</div></figcaption></figure>')


def groups_html(h: Handlers, found: list[list[dict]] | None) -> str:
    found = found or []
    if not found:
        return '<p class="dup-none">No near-duplicates at this threshold.</p>'
    cards = []
    shown = found[:MAX_GROUPS]
    index = h.searcher.index
    files = [m["file"] for g in shown for m in g]
    found_keys = index.get(files, ())
    keys = {f: f if f in found_keys else resolve(index, f) for f in files}  # a video: a scene
    stored = index.get(keys.values(), ("hash", "size", "mtime", "taken", "width", "height",
                                       "fields"))
    rows = {f: stored[k] for f, k in keys.items() if k in stored}
    for n, group in enumerate(shown, 1):
        copies = []
        for m in group:
            row = rows.get(m["file"])
            preview = h.thumbs.ensure(m["file"], row["hash"], row["fields"].get("time")
                                      if is_scene(row) else None) if row else None
            copies.append(copy_card(m, row, str(preview) if preview else None))
        cards.append(f'<section class="dup-group"><h3>Group {n} · {len(group)} pictures</h3>'
                     f'<div class="dup-copies">{"".join(copies)}</div></section>')
    return "".join(cards)


def describe(found: list[list[dict]]) -> str:
    more = f" (showing the first {MAX_GROUPS})" if len(found) > MAX_GROUPS else ""
    return f"**{len(found)}** groups of near-duplicates{more}"


def duplicates_tab(h: Handlers) -> None:
    with gr.Tab("Duplicates"):
        with gr.Row(equal_height=False):
            threshold = gr.Slider(0.8, 1.0, value=h.default_threshold(), step=0.0001, scale=3,
                                  label="Similarity threshold (copies score near 1)")
            find = gr.Button("Find duplicates", variant="primary", elem_id="find-duplicates",
                             scale=1, min_width=140)
        groups = gr.JSON(visible=False)  # a JSON output, so the API returns the groups
        count = gr.Markdown(elem_id="group-count")
        cards = gr.HTML("", elem_id="duplicate-groups", js_on_load=None)

    def run(threshold, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        progress(0, desc=f"comparing {h.searcher.index.count()} pictures with their "
                         "neighbours")
        return h.duplicate_groups(threshold)

    find.click(run, [threshold], [groups], api_name="duplicates", show_progress="full") \
        .then(lambda found: (describe(found), groups_html(h, found)), [groups],
              [count, cards], api_name=False)
