"""What a photo says about itself in words: its file name, its folders, its camera, its place.

These words are a photo's text (`Item.fields`: `name`, `folders`, `camera`, `place`), which BM25
indexes beside the picture vector (mmsearch.items.item_text), so "bali sunset" finds
`Liburan/Lombok/IMG_2024_bali-sunset.jpg` by name and "lombok" by folder, and a search result
can say which of them matched (mmsearch.search). Camera prefixes, numbers and extensions carry
no meaning a person would type, so they are left out: `IMG_2024_bali-sunset` -> "bali sunset".
"""

from __future__ import annotations

import os
import re

from mmsearch.places import place_of  # light: its data loads on the first photo with GPS

# Tokens cameras, phones and apps put in file names; nobody searches for them.
NOISE = frozenset({"img", "image", "dsc", "dscn", "dscf", "dcim", "pxl", "mvimg", "vid",
                   "imag", "pict", "photo", "wp", "jpg", "jpeg", "png", "heic", "heif", "webp",
                   "gif", "tif", "tiff", "bmp", "mp", "copy", "edited", "burst", "cover"})
# camelCase joins ("BaliSunset" -> Bali Sunset), then runs of letters or of digits.
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_PIECE = re.compile(r"\d+|[^\W\d_]+")
SIGNAL_FIELDS = ("name", "folders", "camera", "place")


def words_of(text: str) -> list[str]:
    """The meaningful words of a file or folder name, in order, without repeats."""
    seen: list[str] = []
    for piece in _PIECE.findall(_CAMEL.sub(" ", text)):
        word = piece.lower()
        if len(word) < 2 or word.isdigit() or word in NOISE or word in seen:
            continue
        seen.append(word)
    return seen


def name_fields(path: str, root: str) -> dict:
    """{"name", "folders"} of the picture at `path` found under the indexed folder `root`:
    the words of its file name, and of its folders from `root`'s own name down."""
    stem = os.path.splitext(os.path.basename(path))[0]
    top = root.rstrip(os.sep) if os.path.isdir(root) else os.path.dirname(root)
    parts = [os.path.basename(top)]
    below = os.path.relpath(os.path.dirname(path), top)
    if below != "." and not below.startswith(".."):
        parts += below.split(os.sep)
    folders: list[str] = []
    for part in parts:
        folders += [w for w in words_of(part) if w not in folders]
    return {"name": " ".join(words_of(stem)), "folders": " ".join(folders)}


def camera_text(make: str | None, model: str | None) -> str:
    """"Apple iPhone 13" from EXIF Make "Apple" and Model "iPhone 13" (many models repeat
    the make: "Canon" + "Canon EOS R6" -> "Canon EOS R6")."""
    make = (make or "").strip("\x00 ").strip()
    model = (model or "").strip("\x00 ").strip()
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(p for p in (make, model) if p)


# The version of what photo_fields derives: a stored photo of an older version (or none, as
# after the move from schema 1) gets its text again on the next index run, from its path and
# its header, without its picture being decoded or embedded again. 2: "place" from GPS.
SIGNALS_VERSION = 2


def photo_fields(path: str, root: str, camera: str = "",
                 gps: tuple[float, float] | None = None) -> dict:
    """A photo's fields: its name and folder words, camera, GPS position and the place
    there in words (mmsearch.places; none far from any town)."""
    fields = {k: v for k, v in name_fields(path, root).items() if v}
    if camera:
        fields["camera"] = camera
    if gps is not None:
        fields["lat"], fields["lon"] = gps
        place = place_of(*gps)
        if place is not None:
            fields["place"] = place.text
    fields["signals"] = SIGNALS_VERSION
    return fields
