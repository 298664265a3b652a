"""A messy photo folder, generated here: every good picture indexed, every bad one reported once."""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import demo_files
from indexer.decode import read_picture
from mmsearch.images import BadPicture, heif_available
from indexer.pipeline import index_paths
from mmsearch.search import Searcher


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature + length/type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def demo_picture(i: int) -> Image.Image:
    return Image.open(demo_files(300)[i]).convert("RGB")


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "messy photos"
    root.mkdir()
    good: set[str] = set()
    bad: dict[str, str] = {}

    def keep(path):
        good.add(str(path))
        return path

    (root / "empty.jpg").write_bytes(b"")
    bad[str(root / "empty.jpg")] = "empty file"
    jpeg = io.BytesIO()
    demo_picture(0).resize((400, 400)).save(jpeg, "JPEG")
    (root / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    bad[str(root / "truncated.jpg")] = "corrupt or truncated"
    (root / "notes.jpg").write_text("shopping list: eggs, milk")
    bad[str(root / "notes.jpg")] = "not a picture"
    (root / "bomb.png").write_bytes(png_claiming_size(30000, 30000))
    bad[str(root / "bomb.png")] = "decompression bomb"

    demo_picture(1).save(keep(root / "really a png.webp"), "PNG")
    demo_picture(2).convert("CMYK").save(keep(root / "cmyk.jpg"), "JPEG")
    grey16 = (np.asarray(demo_picture(3).convert("L"), np.uint16) * 257)
    Image.fromarray(grey16).save(keep(root / "grey16.png"))
    demo_picture(4).convert("P", palette=Image.Palette.ADAPTIVE).save(
        keep(root / "palette.png"), transparency=0)
    frames = [demo_picture(5), demo_picture(6)]
    frames[0].save(keep(root / "animated.gif"), save_all=True, append_images=frames[1:])
    # a landscape picture stored sideways with EXIF orientation 6 (rotate 90° clockwise to view)
    upright = demo_picture(7).resize((120, 80))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(keep(root / "rotated.jpg"), "JPEG",
                                                      exif=exif, quality=95)
    shutil.copy2(demo_files(300)[8], keep(root / "søndag på stranden 海.png"))
    deep = root.joinpath(*[f"level{i}" for i in range(30)])
    deep.mkdir(parents=True)
    shutil.copy2(demo_files(300)[9], keep(deep / "deep.png"))
    os.symlink(root, root / "loop")  # a symlink loop: not followed
    (root / "._resource.jpg").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (root / ".hidden.jpg").write_bytes(b"whatever")
    (root / ".thumbs").mkdir()
    shutil.copy2(demo_files(300)[10], root / ".thumbs" / "t.png")
    (root / "readme.txt").write_text("not even a picture name")
    return root, good, bad, upright


def test_hostile_folder(hostile, make_index, encoder):
    root, good, bad, upright = hostile
    index = make_index()
    summary = index_paths([str(root)], index, encoder, progress=False)

    indexed = {r["path"] for r in index.rows_under(str(root))}
    assert indexed == good
    reported = {e["path"]: e["reason"] for e in summary.errors}
    assert set(reported) == set(bad)  # each bad file once; hidden files silently skipped
    for path, words in bad.items():
        assert words in reported[path], (path, reported[path])
        assert "\n" not in reported[path] and len(reported[path]) < 160
    assert summary.added == len(good) and summary.skipped == len(bad)

    # EXIF orientation applied: stored upright, and found by its upright picture
    rotated = str(root / "rotated.jpg")
    row = index.get([rotated], ("width", "height"))[rotated]
    assert (row["width"], row["height"]) == (120, 80)
    hit = Searcher(index, encoder).search_image(upright, k=1)[0]
    assert hit.path == rotated and hit.score > 0.97


def test_vanished_file_is_reported_not_raised(tmp_path, encoder):
    gone = tmp_path / "gone.jpg"
    with pytest.raises(BadPicture, match="vanished"):
        read_picture(str(gone), encoder.preprocess, 448)


def test_heic_without_the_extra_is_reported(tmp_path, make_index, encoder):
    if heif_available():
        import pillow_heif

        pillow_heif.register_heif_opener()
        demo_picture(11).save(tmp_path / "phone.heic")
        summary = index_paths([str(tmp_path)], make_index(), encoder, progress=False)
        assert summary.added == 1 and summary.errors == []
    else:
        (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
        summary = index_paths([str(tmp_path)], make_index(), encoder, progress=False)
        assert summary.errors[0]["reason"].startswith("HEIC/HEIF needs the heic extra")


def test_a_file_changed_between_listing_and_reading_is_indexed_as_read(tmp_path, make_index,
                                                                        encoder):
    """The row describes the bytes actually read; a later run notices any newer change."""
    from indexer.pipeline import plan
    from mmsearch.items import content_hash

    shutil.copy2(demo_files(300)[20], tmp_path / "a.png")
    index = make_index()
    work = plan([str(tmp_path)], index)
    assert [j.path for j in work.jobs] == [str(tmp_path / "a.png")]
    demo_picture(21).resize((200, 200)).save(tmp_path / "a.png")  # changed after listing
    picture = read_picture(work.jobs[0].path, encoder.preprocess, 448)
    data = (tmp_path / "a.png").read_bytes()
    assert (picture.hash, picture.size, picture.width) == (content_hash(data), len(data), 200)
