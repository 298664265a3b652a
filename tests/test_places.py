"""Where a photo was taken, in words (issue 16): EXIF GPS -> the town, its area, region and
country, offline from GeoNames data (mmsearch.places), stored as the photo's field "place".
Real JPEGs with real EXIF GPS written by Pillow, the real gazetteer, the real demo model and a
real Milvus Lite index."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from conftest import demo_files
from indexer.pipeline import index_paths
from mmsearch.images import header_facts
from mmsearch.photo_text import SIGNALS_VERSION, photo_fields
from mmsearch.places import MAX_KM, place_of

GPS_IFD = 0x8825
ROOT = Path(__file__).resolve().parents[1]  # a fresh process imports mmsearch from here


def rational_dms(degrees: float) -> tuple:
    """Degrees as EXIF writes them: three rationals (degrees, minutes, seconds/100)."""
    d = int(degrees)
    m = int((degrees - d) * 60)
    s = round(((degrees - d) * 60 - m) * 60 * 100)
    return Fraction(d), Fraction(m), Fraction(s, 100)


def gps_jpeg(src, out, lat: float, lon: float):
    """A real JPEG whose EXIF GPS IFD holds (lat, lon) as refs and rationals."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 13"
    exif[GPS_IFD] = {0: b"\x02\x02\x00\x00", 1: "S" if lat < 0 else "N",
                     2: rational_dms(abs(lat)), 3: "W" if lon < 0 else "E",
                     4: rational_dms(abs(lon))}
    Image.open(src).convert("RGB").resize((224, 224)).save(out, exif=exif)
    return out


KRATON = (-7.8053, 110.3642)   # the Sultan's palace, Yogyakarta
UBUD = (-8.5069, 115.2625)
SENGGIGI = (-8.4880, 116.0420)  # Lombok
JAVA_SEA = (-5.0, 110.0)        # 183 km from the nearest town


def test_a_photo_taken_in_yogyakarta_says_so(tmp_path):
    jpeg = gps_jpeg(demo_files(1)[0], tmp_path / "IMG_0001.jpg", *KRATON)
    camera, gps = header_facts(str(jpeg))
    assert gps == (pytest.approx(KRATON[0], abs=1e-4), pytest.approx(KRATON[1], abs=1e-4))
    fields = photo_fields(str(jpeg), str(tmp_path), camera, gps)
    assert fields["place"] == "Yogyakarta, Kota Yogyakarta, Indonesia"
    assert fields["signals"] == SIGNALS_VERSION == 2
    assert "Yogyakarta" in fields["place"]


@pytest.mark.parametrize("where, words", [
    (UBUD, ["Ubud", "Gianyar", "Bali", "Indonesia"]),
    ((-8.6500, 115.2167), ["Denpasar", "Bali"]),
    ((-8.5833, 116.1167), ["Mataram", "West Nusa Tenggara"]),
    (SENGGIGI, ["Senggigi", "Lombok", "West Nusa Tenggara"]),
    ((-6.1754, 106.8272), ["Jakarta", "Indonesia"]),
    ((-6.9175, 107.6191), ["Bandung", "West Java"]),
    ((-7.2575, 112.7521), ["Surabaya", "East Java"]),  # the town is a ward: Kota Surabaya
    ((48.8566, 2.3522), ["Paris", "Île-de-France", "France"]),
    ((35.6762, 139.6503), ["Tokyo", "Japan"]),
    ((40.7580, -73.9855), ["New York", "United States"]),
    ((37.5665, 126.9780), ["Seoul", "South Korea"]),  # the common name, not "Korea, Republic of"
])
def test_towns_regions_and_countries_by_name(where, words):
    place = place_of(*where)
    assert place is not None and place.km < 5
    for word in words:
        assert word in place.text


def test_far_from_any_town_there_is_no_place(tmp_path):
    assert place_of(*JAVA_SEA) is None
    assert place_of(-15.0, 105.0) is None  # Indian Ocean, 514 km from Christmas Island
    # ...though the nearest town is known: the distance, not a missing town, is why
    from mmsearch.places import gazetteer

    assert gazetteer().nearest(*JAVA_SEA).km > MAX_KM
    jpeg = gps_jpeg(demo_files(1)[0], tmp_path / "at_sea.jpg", *JAVA_SEA)
    fields = photo_fields(str(jpeg), str(tmp_path), *header_facts(str(jpeg)))
    assert fields["lat"] == pytest.approx(JAVA_SEA[0]) and "place" not in fields


def test_the_nearest_town_is_nearest_on_the_ground_across_the_180th_meridian():
    from mmsearch.places import gazetteer

    east, west = gazetteer().nearest(-16.8, 179.99), gazetteer().nearest(-16.8, -179.99)
    assert east.country == west.country == "Fiji"  # 2.1 km apart, one town for both
    assert abs(east.km - west.km) < 3


def test_positions_that_are_no_position():
    for lat, lon in [(91, 0), (0, 181), (float("nan"), 0), ("north", 0), (None, None)]:
        assert place_of(lat, lon) is None


def test_importing_places_loads_nothing():
    code = ("import sys, mmsearch.places as p, mmsearch.photo_text\n"
            "print(sorted(m for m in ('scipy', 'numpy', 'reverse_geocode') if m in sys.modules),"
            " p.gazetteer.cache_info().currsize)\n"
            "p.place_of(-8.5069, 115.2625)\n"
            "print(sorted(m for m in ('scipy',) if m in sys.modules), p.gazetteer.cache_info())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "[] 0"
    assert out[1] == "['scipy'] CacheInfo(hits=0, misses=1, maxsize=1, currsize=1)"


def test_indexed_photos_store_their_place(tmp_path, make_index, encoder):
    root = tmp_path / "Liburan"
    root.mkdir()
    a, b, c = demo_files(3)
    gps_jpeg(a, root / "IMG_0001.jpg", *KRATON)
    gps_jpeg(b, root / "IMG_0002.jpg", *UBUD)
    shutil.copy2(c, root / "no_gps.png")
    index = make_index()
    summary = index_paths([str(root)], index, encoder, progress=False)
    assert summary.added == 3
    paths = [str(root / n) for n in ("IMG_0001.jpg", "IMG_0002.jpg", "no_gps.png")]
    stored = index.get(paths, ("fields", "text"))
    assert stored[paths[0]]["fields"]["place"] == "Yogyakarta, Kota Yogyakarta, Indonesia"
    assert stored[paths[1]]["fields"]["place"] == "Ubud, Kabupaten Gianyar, Bali, Indonesia"
    assert "Bali" in stored[paths[1]]["text"]  # the words BM25 will index
    assert "place" not in stored[paths[2]]["fields"]


def test_an_index_from_before_places_gets_them_without_embedding(tmp_path, make_index, encoder,
                                                                 monkeypatch):
    import indexer.pipeline
    import mmsearch.photo_text

    root = tmp_path / "Liburan"
    root.mkdir()
    jpeg = str(gps_jpeg(demo_files(1)[0], root / "IMG_0001.jpg", *SENGGIGI))
    index = make_index()
    with monkeypatch.context() as before:  # what version 1 stored: the position, no place
        before.setattr(mmsearch.photo_text, "SIGNALS_VERSION", 1)
        before.setattr(indexer.pipeline, "SIGNALS_VERSION", 1)
        before.setattr(mmsearch.photo_text, "place_of", lambda lat, lon: None)
        assert index_paths([str(root)], index, encoder, progress=False).added == 1
    old = index.get([jpeg], ("fields",))[jpeg]["fields"]
    assert old["signals"] == 1 and "place" not in old and old["lat"] == pytest.approx(-8.488)
    monkeypatch.setattr(type(encoder), "encode_pixels", lambda *a, **k: pytest.fail(
        "a picture was embedded again"))
    summary = index_paths([str(root)], index, encoder, progress=False)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 0, 1)
    now = index.get([jpeg], ("fields", "text"))[jpeg]
    assert now["fields"]["signals"] == 2
    assert now["fields"]["place"] == ("Senggigi, Kabupaten Lombok Barat, West Nusa Tenggara, "
                                      "Indonesia")
    assert "Lombok" in now["text"]
