"""`sanitize report`: thumbnails of what survives, the page's data, and the page in Chromium."""

from __future__ import annotations

import base64
import csv
import io
import os
import shutil
import tempfile
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from PIL import Image, ImageFile

from sanitize import damage
from sanitize.cli import main
from sanitize.layout import parse_layout
from sanitize.manifest import REPORT_SCHEMA
from sanitize.report import pick_thumbnails
from sanitize.thumbnails import BOX, _batch_result, thumbnail, thumbnail_batch
from tests.test_check import encode, jpeg, picture, png

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PANO = "Structured3D/scene_{:05d}/2D_rendering/{}/panorama/full/{}.png"
BIG_ROWS = 10_000
EVIL = "odd/</script><b>bold</b>.png"  # must stay text in the page, not end its script


def half_zeroed_png() -> bytes:
    """A PNG whose image data turns to zeros halfway through: its top half still decodes."""
    data = png((256, 128), compress_level=0)  # stored deflate: bytes map linearly to rows
    idat = [(start, end) for ctype, start, end in damage.png_chunks(data) if ctype == b"IDAT"]
    start, end = idat[0][0], idat[-1][1]
    return damage.zero_fill_tail(data, (start + end) // 2)


def write(root: Path, relpath: str, data: bytes) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def report(out: Path, *extra: str) -> int:
    return main(["report", "--out", str(out), "--jobs", "2", "--no-progress", *extra])


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real scan's output folder, with a report.html made from it."""
    root = tmp_path_factory.mktemp("data")
    files = {
        PANO.format(1, "100", "rgb_rawlight"): png(),
        PANO.format(1, "100", "albedo"): half_zeroed_png(),
        PANO.format(1, "101", "rgb_warmlight"): damage.truncate(png(), 3000),
        PANO.format(3100, "7", "rgb_coldlight"): damage.truncate(png(), 9000),
        PANO.format(3100, "7", "normal"): damage.html_page(),
        PANO.format(3300, "8", "semantic"): damage.lfs_pointer(),
        PANO.format(3300, "8", "depth"): b"",
        "SUN360/bedroom/pano_a.jpg": jpeg(),
        "SUN360/bedroom/pano_b.jpg": damage.truncate(jpeg(), 4000),
        "SUN360/kitchen/pano_c.png": damage.flip_bit(png(), 3000, 3),
    }
    for relpath, data in files.items():
        write(root, relpath, data)
    out = tmp_path_factory.mktemp("out")
    assert main(["scan", str(root), "--out", str(out), "--jobs", "2", "--no-progress"]) == 0
    assert report(out) == 0
    return out


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, scanned: Path) -> Path:
    """A 10,000-row corruption report (paths that mostly no longer exist), and its page."""
    out = tmp_path_factory.mktemp("big")
    real = next(r["url"] for r in read_csv(scanned / "corruption_report.csv"))
    kinds = ("zero_filled", "truncated", "checksum", "not_an_image", "empty", "missing")
    columns: dict[str, list] = {name: [] for name in REPORT_SCHEMA.names}
    for i in range(BIG_ROWS):
        relpath = EVIL if i == 7 else PANO.format(i // 4, 100_000 + i, "rgb_rawlight")
        row = {
            "url": real if i < 30 else f"/gone/{relpath}",
            "relpath": relpath,
            "error_type": kinds[i % len(kinds)],
            "error": f"OSError: image file is truncated; damage number {i}",
            "bytes": 800_000 + i,
            "mtime_ns": None,
            **parse_layout(relpath),
        }
        for name, column in columns.items():
            column.append(row[name])
    table = pa.table(columns, schema=REPORT_SCHEMA)
    pacsv.write_csv(table.sort_by("url"), out / "corruption_report.csv")
    assert report(out, "--thumbnails", "20") == 0
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def decoded_image(uri: str) -> Image.Image:
    head, _, body = uri.partition(",")
    assert head == "data:image/webp;base64"
    return Image.open(io.BytesIO(base64.b64decode(body)))


# -- thumbnails ----------------------------------------------------------------------------


def test_thumbnail_keeps_the_rows_before_a_zero_filled_tail(tmp_path: Path) -> None:
    path = write(tmp_path, "a.png", half_zeroed_png())
    thumb = thumbnail(str(path), "zero_filled")
    assert thumb.glyph is None and 0.45 < thumb.decoded < 0.55
    image = decoded_image(thumb.image)
    assert image.size == BOX
    rgb = image.convert("RGB")
    assert rgb.getpixel((100, 10)) != rgb.getpixel((100, 90))  # picture above, grey below


def test_thumbnail_of_a_cut_jpeg_shows_its_top(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jpg", damage.truncate(jpeg((512, 256)), 12_000))
    thumb = thumbnail(str(path), "truncated")
    assert thumb.image is not None and 0.0 < thumb.decoded < 1.0


def test_thumbnail_stretches_16_bit_depth_to_be_visible(tmp_path: Path) -> None:
    depth = Image.fromarray(picture()[..., 0].astype("uint16") * 40)
    path = write(tmp_path, "depth.png", damage.truncate(encode(depth), 9000))
    image = decoded_image(thumbnail(str(path), "truncated").image).convert("L")
    assert np.asarray(image).max() > 100  # not the black-and-white clip of convert("RGB")


@pytest.mark.parametrize("size", [(10_000, 10_000), (20_000, 10_000)])
def test_thumbnail_never_decodes_a_decompression_bomb(
    tmp_path: Path, size, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "bomb.png", damage.decompression_bomb_png(*size))
    loads: list[str] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda image: loads.append(image.format) or real_load(image)
    )
    for error_type in ("too_large", "truncated"):  # also when the file changed since the scan
        assert thumbnail(str(path), error_type).glyph == "too large to decode"
    assert loads == []


def test_thumbnail_leaves_pillow_strict_afterwards(tmp_path: Path) -> None:
    good = write(tmp_path, "a.png", half_zeroed_png())
    bad = write(tmp_path, "b.png", damage.truncate(png(), 60))
    for path in (good, bad):
        thumbnail(str(path), "truncated")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("data", "error_type", "glyph"),
    [
        (damage.html_page(), "not_an_image", "HTML page"),
        (damage.lfs_pointer(), "not_an_image", "LFS pointer"),
        (bytes(64), "not_an_image", "all zeros"),
        (b"", "empty", "0 bytes"),
        (damage.truncate(png(), 60), "truncated", "nothing decodes"),
        (png(), "decoder_crash", "crashes the decoder"),
    ],
)
def test_thumbnail_glyph_names_what_the_file_holds(
    tmp_path: Path, data: bytes, error_type: str, glyph: str
) -> None:
    assert thumbnail(str(write(tmp_path, "f.png", data)), error_type).glyph == glyph


def test_thumbnail_notes_files_gone_or_changed_since_the_scan(tmp_path: Path) -> None:
    assert thumbnail(str(tmp_path / "gone.png"), "truncated").glyph == "gone since the scan"
    path = write(tmp_path, "a.png", half_zeroed_png())
    assert thumbnail(str(path), "zero_filled", mtime_ns=1).note == "changed since the scan"
    assert thumbnail(str(path), "zero_filled", path.stat().st_mtime_ns).note is None


class _InlinePool:
    """Runs tasks at once; a task for the path "kills" dies like a crashed worker would."""

    def submit(self, fn, tasks):
        future = Future()
        if any(task[0] == "kills" for task in tasks):
            future.set_exception(BrokenProcessPool("a worker died"))
        else:
            future.set_result(fn(tasks))
        return future


def test_a_worker_death_costs_one_file_its_thumbnail_not_the_page(tmp_path: Path) -> None:
    good = str(write(tmp_path, "a.png", half_zeroed_png()))
    batch = [(good, "zero_filled", None), ("kills", "truncated", None), (good, "empty", None)]
    pool = _InlinePool()
    made = _batch_result(pool, batch, pool.submit(thumbnail_batch, batch))
    assert [t.image is not None for t in made] == [True, False, False]
    assert [t.glyph for t in made] == [None, "crashes the decoder", "0 bytes"]


def test_thumbnail_budget_takes_turns_between_types() -> None:
    types = ["truncated"] * 10 + ["checksum"] * 2 + ["empty", "zero_filled"]
    picked = pick_thumbnails(types, 5)
    assert picked == {0, 10, 13, 1, 11}  # a turn each, in row order, until the budget is spent
    assert pick_thumbnails(types, 0) == set()


# -- the command ---------------------------------------------------------------------------


def test_report_writes_one_self_contained_page(scanned: Path, capsys) -> None:
    assert report(scanned) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"Wrote {scanned / 'report.html'}: 8 damaged images, 5 types ")
    page = (scanned / "report.html").read_text()
    assert "default-src 'none'" in page  # the browser itself refuses any network request
    for remote in ("<link", ' src="http', "src='http", "url(http", "@import", "<script src"):
        assert remote not in page


def test_report_on_a_folder_without_a_scan_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert report(tmp_path / "nope") == 2
    assert report(tmp_path) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(e.startswith("sanitize: error: ") for e in errors)
    assert "corruption_report.csv" in errors[1]


def test_report_rejects_a_repair_plan_without_its_columns(scanned: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(scanned, out)
    (out / "repair_plan.csv").write_text("relpath,archive\nx.png,a.zip\n")
    assert report(out) == 2


def test_report_of_a_clean_scan_says_so(tmp_path: Path) -> None:
    pacsv.write_csv(REPORT_SCHEMA.empty_table(), tmp_path / "corruption_report.csv")
    assert report(tmp_path) == 0
    assert "No damaged images" in (tmp_path / "report.html").read_text()


def test_ten_thousand_rows_stay_a_few_megabytes(big: Path) -> None:
    assert (big / "report.html").stat().st_size < 4_000_000


# -- the page in headless Chromium ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven through its chromedriver; skipped where missing, unless CI."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium_missing = "selenium is not installed (pip install -e '.[dev]')"
    else:
        selenium_missing = None
    missing = selenium_missing or next(
        (
            f"{p} is missing (apt-get install chromium chromium-driver)"
            for p in (CHROMIUM, CHROMEDRIVER)
            if not os.access(p, os.X_OK)
        ),
        None,
    )
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",  # as root, Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The report page loaded in the browser, with the few reads and actions tests need."""

    def __init__(self, driver, path: Path) -> None:
        from selenium.webdriver.common.by import By

        self.driver, self.by = driver, By
        driver.get(path.as_uri())
        assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"

    def all(self, css: str) -> list:
        return self.driver.find_elements(self.by.CSS_SELECTOR, css)

    def one(self, css: str):
        return self.driver.find_element(self.by.CSS_SELECTOR, css)

    def row_types(self) -> list[str]:
        return [tr.get_attribute("data-type") for tr in self.all("#rows tr")]

    def count(self) -> str:
        return self.one("#count").text

    def choose_type(self, error_type: str) -> None:
        from selenium.webdriver.support.ui import Select

        select = Select(self.one("#type-filter"))
        select.select_by_visible_text(
            next(o.text for o in select.options if o.text.startswith(f"{error_type} ("))
        )

    def search(self, text: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        before = self.count()
        box = self.one("#search")
        box.clear()
        box.send_keys(text)
        WebDriverWait(self.driver, 5).until(lambda _: self.count() != before)


def test_page_shows_totals_charts_and_a_row_per_damaged_image(browser, scanned: Path) -> None:
    page = Page(browser, scanned / "report.html")
    rows = read_csv(scanned / "corruption_report.csv")
    types = {r["error_type"] for r in rows}
    assert page.one("#summary .card.bad").text.startswith(f"{len(rows)}\n")
    bars = page.all("#chart-types g.bar")
    assert {bar.get_attribute("data-type") for bar in bars} == types
    assert all(bar.find_elements(page.by.TAG_NAME, "rect") for bar in bars)
    groups = {bar.get_attribute("data-search") for bar in page.all("#chart-groups g.bar")}
    assert groups == {"scene_00001/", "scene_03100/", "scene_03300/", "SUN360/"}
    assert sorted(page.row_types()) == sorted(r["error_type"] for r in rows)
    assert len(page.all("#rows td.thumb img")) == 5  # 3 truncated, zero-filled, bit flip
    glyphs = {g.text for g in page.all("#rows .glyph")}
    assert {"HTML page", "LFS pointer", "0 bytes"} <= glyphs
    assert page.count() == "Showing 1\u20138 of 8"


def test_type_filter_and_chart_click_show_only_that_type(browser, scanned: Path) -> None:
    page = Page(browser, scanned / "report.html")
    page.choose_type("truncated")
    assert set(page.row_types()) == {"truncated"} and len(page.row_types()) == 3
    page.one("#clear").click()
    assert len(page.row_types()) == 8
    page.one('#chart-types g.bar[data-type="not_an_image"] rect').click()
    assert page.row_types() == ["not_an_image", "not_an_image"]
    assert page.one("#type-filter option:checked").text.startswith("not_an_image")


def test_search_keeps_the_paths_that_match(browser, scanned: Path) -> None:
    page = Page(browser, scanned / "report.html")
    page.search("sun360/")
    paths = [td.text for td in page.all("#rows td.path")]
    assert len(paths) == 2 and all(p.startswith("SUN360/") for p in paths)
    page.search("scene_03100 coldlight")  # every word must match
    assert [td.text for td in page.all("#rows td.path")] == [
        PANO.format(3100, "7", "rgb_coldlight")
    ]


def test_repair_plan_adds_the_archive_per_row_and_a_chart(browser, scanned: Path, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(scanned, out)
    rows = read_csv(out / "corruption_report.csv")
    with open(out / "repair_plan.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["relpath", "archive", "entry", "status", "bytes"])
        for i, row in enumerate(rows[:5]):
            archive = f"/archives/Structured3D_panorama_0{i % 2}.zip"
            writer.writerow([row["relpath"], archive, row["relpath"], "repairable", 1])
        writer.writerow([rows[5]["relpath"], "", "", "not_in_archive", 0])
    assert report(out) == 0
    page = Page(browser, out / "report.html")
    names = [bar.get_attribute("data-search") for bar in page.all("#chart-archives g.bar")]
    assert set(names) == {f"/archives/Structured3D_panorama_0{i}.zip" for i in (0, 1)} | {None}
    cells = [td.text for td in page.all("#rows td.archive")]
    assert sum("Structured3D_panorama_0" in c and "repairable" in c for c in cells) == 5
    assert sum("not in archive" in c for c in cells) == 1
    assert sum("not in the plan" in c for c in cells) == 2
    page.search("panorama_01.zip")
    assert len(page.row_types()) == 2


def test_ten_thousand_rows_are_paged_and_filtered(browser, big: Path) -> None:
    page = Page(browser, big / "report.html")  # how fast: bench/bench_report.py
    assert len(page.row_types()) == 100
    assert page.count() == "Showing 1\u2013100 of 10,000"
    first = page.one("#rows td.path").text
    page.one("#next").click()
    assert page.count() == "Showing 101\u2013200 of 10,000"
    assert page.one("#page").text == "Page 2 of 100"
    assert page.one("#rows td.path").text != first
    page.choose_type("checksum")
    assert page.count().endswith(f"of {BIG_ROWS // 6 + 1:,} (filtered from 10,000)")
    assert set(page.row_types()) == {"checksum"}
    page.one("#clear").click()
    page.search("</script>")
    assert [td.text for td in page.all("#rows td.path")] == [EVIL]
    page.search("scene_00042/")
    assert len(page.row_types()) == 4
