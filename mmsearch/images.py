"""Picture decoding shared by indexing, queries and previews: bytes -> upright RGB.

Decodes no larger than needed (JPEG `draft`), applies EXIF orientation, flattens any mode to
RGB, and turns every failure into a `BadPicture` with a one-line reason.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

from mmsearch.config import HEIF_EXTENSIONS

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 36867
DATETIME = 306
ORIENTATION = 0x0112
MAKE, MODEL = 0x010F, 0x0110
GPS_IFD = 0x8825


class BadPicture(Exception):
    """A file that cannot be used as a picture; str() is the one-line reason."""


def heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def enable_heif() -> bool:
    """Register pillow-heif's opener when the `heic` extra is installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


class Decoded(NamedTuple):
    image: Image.Image  # upright RGB, decoded no larger than needed
    width: int  # full size, upright
    height: int
    taken: float | None  # EXIF capture time, if any
    camera: str = ""     # EXIF make and model ("Apple iPhone 13")
    gps: tuple[float, float] | None = None  # EXIF latitude, longitude in degrees


# Formats a picture may be in. Pillow would otherwise pick any of its ~40 decoders by the
# file's first bytes (a ".jpg" that is really PSD or DDS reaches those decoders, where most of
# Pillow's advisories have been); these are the formats mmsearch indexes.
# (JPEG covers MPO, which phones write.) HEIF is there once pillow-heif is registered.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "HEIF")


def formats() -> list[str]:
    """FORMATS that Pillow can open now (Image.open raises KeyError for unknown names)."""
    Image.init()
    return [f for f in FORMATS if f in Image.OPEN]


def open_image(data: bytes, path: str = "", draft_size: int = 448,
               max_pixels: int | None = None) -> Decoded:
    """Bytes -> upright RGB picture plus its full size and capture time. `max_pixels`, when
    given, refuses larger pictures from their header, before any pixel is decoded."""
    if os.path.splitext(path)[1].lower() in HEIF_EXTENSIONS and not heif_available():
        raise BadPicture("HEIC/HEIF needs the heic extra: pip install 'mmsearch[heic]'")
    try:
        with warnings.catch_warnings():
            # A picture over PIL's pixel limit is refused below, not merely warned about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=formats())
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise BadPicture(f"too large ({width}x{height} pixels; a query picture may have "
                                 f"up to {max_pixels // 1_000_000} megapixels)")
            if image.getexif().get(ORIENTATION) in (5, 6, 7, 8):
                width, height = height, width
            taken, camera, gps = exif_time(image), exif_camera(image), exif_gps(image)
            image.draft("RGB", (draft_size, draft_size))  # JPEG: decode at 1/2..1/8 scale
            image.load()
            image = ImageOps.exif_transpose(image)
            return Decoded(to_rgb(image), width, height, taken, camera, gps)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadPicture("too many pixels (possible decompression bomb)") from None
    except BadPicture:
        raise
    except UnidentifiedImageError:
        raise BadPicture("not a picture (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadPicture(f"corrupt or truncated picture ({_short(exc)})") from None
    except Exception as exc:  # a decoder bug must not stop the run
        raise BadPicture(f"cannot decode ({type(exc).__name__}: {_short(exc)})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency over white, 16-bit grey scaled, not clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        arr = np.asarray(image, dtype=np.float32)
        top = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / top)).clip(0, 255).astype("uint8"), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def exif_time(image: Image.Image) -> float | None:
    """When the photo was taken (EXIF DateTimeOriginal, else DateTime), as a local timestamp."""
    try:
        exif = image.getexif()
        value = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
        if not value:
            return None
        return time.mktime(time.strptime(str(value).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S"))
    except Exception:
        return None  # missing or malformed dates are common and harmless


def header_facts(source) -> tuple[str, tuple[float, float] | None]:
    """(camera, gps) from a picture's header (a path or its bytes), no pixel decoded; ("",
    None) for anything unreadable."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source,
                        formats=formats()) as image:
            return exif_camera(image), exif_gps(image)
    except Exception:
        return "", None


def exif_camera(image: Image.Image) -> str:
    """The camera's make and model from EXIF, "" when absent."""
    from mmsearch.photo_text import camera_text

    try:
        exif = image.getexif()
        return camera_text(str(exif.get(MAKE) or ""), str(exif.get(MODEL) or ""))[:200]
    except Exception:
        return ""


def exif_gps(image: Image.Image) -> tuple[float, float] | None:
    """(latitude, longitude) in degrees from EXIF GPS, None when absent or malformed."""
    try:
        gps = image.getexif().get_ifd(GPS_IFD)
        lat, lon = _degrees(gps[2], gps.get(1, "N")), _degrees(gps[4], gps.get(3, "E"))
    except Exception:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        return None  # (0, 0) is what some cameras write when they have no fix
    return round(lat, 6), round(lon, 6)


def _degrees(dms, ref) -> float:
    d, m, s = (float(x) for x in dms)
    value = d + m / 60 + s / 3600
    return -value if str(ref).strip("\x00 ").upper() in ("S", "W") else value


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
