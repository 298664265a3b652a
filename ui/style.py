"""How the page looks: the theme, the CSS over Gradio's components and the little page script.

The layout follows photo apps people know (immich, Google Photos): one search bar on top,
the filters as chips under it, then results filling the page in a grid of auto-filled
columns, with no inner scroll box. Gradio's class names (`.grid-wrap`, `.thumbnail-item`,
`.caption-label`) are those of gradio 6.31; tests/test_browser.py checks the result in a real
Chromium at 1366x768 and 390x844, so a Gradio upgrade that renames them fails there.

Colours meet WCAG AA (4.5:1 for text) in light and dark mode. Measured with the WCAG formula:
white on #c2410c (the Search button) 5.2:1, #9a3412 hover 7.3:1; placeholder #5f6672 on
white 5.9:1, #a3a9b4 on #1f2937 (dark) 5.5:1; caption text #374151 on #f9fafb 9.9:1.
"""

from __future__ import annotations

import gradio as gr

# Smallest tile: 3 columns on a 390-px phone, 8-9 on a 1366-px laptop (>= 14 results on
# screen after a search there; test_browser counts them).
TILE_MIN_PX = 92
TILE_MIN_WIDE_PX = 138

CSS = f"""
.gradio-container {{ max-width: 1400px !important; padding-top: 4px !important; }}
#app-title h1, #app-title h2 {{ font-size: 1rem !important; margin: 0 !important; }}
#search-bar {{ align-items: flex-end; gap: 8px; flex-wrap: wrap; }}
#search-bar > * {{ min-width: min(100%, 180px); }}
#search-bar button {{ min-height: 42px; }}
#search-button, button.primary {{ background: #c2410c !important; color: #fff !important;
  border-color: #c2410c !important; }}
#search-button:hover, button.primary:hover {{ background: #9a3412 !important; }}
textarea::placeholder, input::placeholder {{ color: #5f6672 !important; opacity: 1; }}
.dark textarea::placeholder, .dark input::placeholder {{ color: #a3a9b4 !important; }}
:focus-visible, button:focus-visible, .thumbnail-item:focus-visible,
textarea:focus-visible, input:focus-visible {{
  outline: 3px solid #1d4ed8 !important; outline-offset: 2px !important; }}
.dark :focus-visible, .dark button:focus-visible, .dark .thumbnail-item:focus-visible,
.dark textarea:focus-visible, .dark input:focus-visible {{ outline-color: #93c5fd !important; }}

/* results: the header line with its chips, then the grid */
.results-header {{ display: flex; flex-wrap: wrap; align-items: center; gap: 6px 10px;
  font-size: 0.95rem; margin: 2px 0; }}
.results-header .what {{ font-weight: 600; }}
.results-header .why {{ flex-basis: 100%; }}
.chip {{ display: inline-flex; align-items: center; gap: 4px; border-radius: 999px;
  padding: 3px 10px; border: 1px solid #6b7280; background: transparent; color: inherit;
  font-size: 0.85rem; cursor: pointer; min-height: 28px; }}
.chip:hover {{ background: rgba(127, 127, 127, 0.15); }}
.chip.clear-all {{ font-weight: 600; }}
.chip img {{ height: 22px; width: 22px; object-fit: cover; border-radius: 4px; }}
.field-error {{ color: #b91c1c; font-weight: 600; margin: 2px 0; }}
.dark .field-error {{ color: #fca5a5; }}
.field-error:empty {{ display: none; }}

.results .grid-wrap {{ max-height: none !important; min-height: 0 !important;
  height: auto !important; overflow: visible !important; padding: 2px !important; }}
.results .grid-container {{ padding-top: 0 !important;
  grid-template-columns: repeat(auto-fill, minmax({TILE_MIN_PX}px, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important; gap: 8px !important; }}
@media (min-width: 700px) {{
  .results .grid-container {{
    grid-template-columns: repeat(auto-fill, minmax({TILE_MIN_WIDE_PX}px, 1fr)) !important; }}
}}
.products .grid-container {{
  grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)) !important; }}
@media (min-width: 700px) {{ .products .grid-container {{
  grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)) !important; }} }}
.results .gallery-item {{ height: auto !important; }}
.results .thumbnail-item {{ aspect-ratio: auto !important; height: auto !important;
  display: flex !important; flex-direction: column; }}
.results .thumbnail-item > img {{ aspect-ratio: 1; height: auto !important; }}
.results .caption-label {{ position: static !important; max-width: none !important;
  white-space: pre-line !important; overflow: visible !important; text-overflow: clip !important;
  overflow-wrap: anywhere; border: 0 !important; border-radius: 0 !important;
  background: transparent !important; color: #374151; font-size: 0.78rem !important;
  line-height: 1.25; padding: 3px 4px 4px !important; opacity: 1 !important; }}
.dark .results .caption-label {{ color: #e5e7eb; }}
.products .caption-label {{ display: -webkit-box !important; -webkit-box-orient: vertical;
  -webkit-line-clamp: 4; overflow: hidden !important; padding-bottom: 0 !important;
  margin-bottom: 4px; }}
.products .caption-label::first-line {{ font-weight: 700; }}
#query-error:not(:has(.field-error)), #filter-error:not(:has(.field-error)) {{
  display: none !important; }}
.results .block-label {{ display: none !important; }}
/* the opened picture: a lightbox over the page, its actions in the toolbar on top */
.results .preview {{ position: fixed !important; inset: 0 !important; z-index: 1000 !important;
  background: var(--background-fill-primary) !important; }}
.results .preview .top-panel {{ position: absolute !important; top: 6px !important; right: 6px;
  left: 6px; display: flex !important; flex-wrap: wrap; justify-content: flex-end; gap: 6px;
  z-index: 2; opacity: 1 !important; }}
.results .preview .custom-button {{ border: 1px solid #6b7280; border-radius: 8px;
  padding: 6px 12px; background: var(--background-fill-primary); color: var(--body-text-color);
  font-weight: 600; min-height: 36px; }}
.results .preview .custom-button:hover {{ background: var(--background-fill-secondary); }}
.results .preview .caption {{ white-space: pre-line; }}
.results .preview .media-button {{ max-height: calc(100vh - 130px) !important; }}
.results .preview .media-button img {{ object-fit: contain !important; }}
/* an opened video: its player over the opened frame, in the same place (ui.media) */
#player .player {{ margin: 8px auto; max-width: 720px; text-align: center; }}
#player video {{ width: 100%; max-height: 70vh; background: #000; }}
body:has(.results .preview) #player .player {{ position: fixed; z-index: 1001; top: 56px;
  left: 50%; transform: translateX(-50%); width: min(92vw, calc(100vh - 200px)); margin: 0;
  background: var(--background-fill-primary); }}
#more-results {{ max-width: 320px; margin: 4px auto; }}
.results-bar {{ gap: 8px; align-items: center; }}

/* duplicates: one card per copy, as many per row as fit */
.dup-group {{ margin: 10px 0 16px; }}
.dup-group h3 {{ font-size: 1rem; margin: 4px 0; }}
.dup-copies {{ display: grid; gap: 10px;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 150px), 1fr)); }}
.dup-copy {{ border: 1px solid #9ca3af; border-radius: 8px; padding: 6px; margin: 0;
  font-size: 0.8rem; overflow-wrap: anywhere; }}
.dup-copy img {{ width: 100%; aspect-ratio: 1; object-fit: contain; background: #f3f4f6; }}
.dup-copy .path {{ font-weight: 600; }}
"""

# Chips are buttons inside a gr.HTML: clicking one tells Python which filter to clear.
CHIP_JS = ("element.addEventListener('click', (e) => { const b = e.target.closest('[data-clear]');"
           " if (b) trigger('click', {clear: b.dataset.clear}); });")

# New results close the large preview first (it would show another picture in that place).
CLOSE_PREVIEW = ("(...args) => { document.querySelectorAll('.results button[aria-label=\"Close\"]')"
                 ".forEach(b => b.click()); return args; }")


# Opening a picture moves the focus to its first action (Find similar), so the keyboard
# reaches it in one step; Escape closes the picture.
PAGE_JS = """() => {
  let open = null;
  new MutationObserver(() => {
    const preview = document.querySelector('.results .preview');
    if (preview && preview !== open) {
      open = preview;
      setTimeout(() => preview.querySelector('button.custom-button')?.focus(), 50);
    } else if (!preview) { open = null; }
  }).observe(document.body, {childList: true, subtree: true});
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      document.querySelector('.results .preview button[aria-label="Close"]')?.click();
    }
  });
}"""


def theme() -> gr.themes.Base:
    return gr.themes.Default(primary_hue=gr.themes.colors.orange,
                             neutral_hue=gr.themes.colors.gray)
