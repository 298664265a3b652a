"""The line above the results: how many, what produced them, the filters as removable chips,
and, when nothing is left, which filter or cutoff emptied the list (with a way to clear it).

Plain functions returning HTML (every value escaped), tested without a browser.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

PAGE = 24  # results per "More results"


@dataclass
class Chip:
    key: str     # what a click clears ("since", "where", "example", "likes", ...)
    label: str   # what the chip says ("since 2024-05")
    thumb: str = ""  # a data: URL shown in the chip (the example picture)


@dataclass
class Header:
    count: int
    what: str                      # "for “a red sneaker”", "similar to item-0297.png"
    chips: list[Chip] = field(default_factory=list)
    why_empty: str = ""            # which filter or cutoff emptied the list
    clear_keys: list[str] = field(default_factory=list)  # chips the empty state offers to clear
    more: bool = False             # "More results" may find more
    matches: bool = False          # all the matches: "≈N matches" (mmsearch.cutoff)


def chip_button(chip: Chip, extra_class: str = "") -> str:
    thumb = f'<img alt="" src="{html.escape(chip.thumb)}">' if chip.thumb else ""
    return (f'<button type="button" class="chip {extra_class}" data-clear="{html.escape(chip.key)}"'
            f' aria-label="remove {html.escape(chip.label)}">{thumb}{html.escape(chip.label)}'
            ' <span aria-hidden="true">×</span></button>')


def header_html(h: Header) -> str:
    n = h.count
    counted = (f"≈{n} match{'es' if n != 1 else ''}" if h.matches else
               f"{n} result{'s' if n != 1 else ''}") if n else "No results"
    parts = [f'<span class="what" role="status">{html.escape(counted)} '
             f'{html.escape(h.what)}</span>']
    removable = [c for c in h.chips if c.key != "all"]
    parts += [chip_button(c) for c in removable]
    if len(removable) > 1:
        parts.append(chip_button(Chip("all", "clear all"), "clear-all"))
    if not n and h.why_empty:
        offers = [c for c in h.chips if c.key in h.clear_keys]
        offer = "".join(chip_button(Chip(c.key, "clear " + c.label), "clear-all") for c in offers)
        parts.append(f'<span class="why" id="why-empty">{html.escape(h.why_empty)} {offer}</span>')
    return f'<div class="results-header" data-count="{n}">{"".join(parts)}</div>'


def error_html(message: str) -> str:
    """One error line for beside a field ("" hides it)."""
    return f'<p class="field-error" role="alert">{html.escape(message)}</p>' if message else ""


def thumb_url(image, size: int = 44) -> str:
    """A small data: URL of a PIL picture (the example picture in its chip)."""
    small = image.copy()
    small.thumbnail((size, size))
    buf = io.BytesIO()
    small.convert("RGB").save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def quoted(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return "“" + (text if len(text) <= limit else text[:limit - 1] + "…") + "”"


def names(items: list[str]) -> str:
    """"a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def empty_reason(emptied: list[Chip], min_score: float | None = None,
                 best: float | None = None) -> str:
    """Why nothing is shown: the chips whose removal brings results back."""
    if not emptied:
        return "Nothing in the index matches all of this."
    said = [c.label for c in emptied]
    if len(emptied) == 1 and emptied[0].key == "min_score" and best is not None:
        return (f"The minimum score {min_score:.2f} left nothing: the best match scores "
                f"{best:.3f}.")
    verb = "leaves" if len(said) == 1 else "leave"
    return f"The filter {names(said)} {verb} nothing: clear it to see results." \
        if len(said) == 1 else f"The filters {names(said)} {verb} nothing: clear one to see results."
