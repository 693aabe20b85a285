"""Benchmark the review page of a 10,000-damaged-image scan: building it, and using it.

Side by side in one run (medians of repeats):
  1. `sanitize report`: 1,000 thumbnails in one worker process vs in all cores;
  2. the page in headless Chromium (where chromium, chromedriver and selenium are installed):
     load until ready, next page, filter by type, search, each timed inside the page.
The damaged tree is hardlinks to real-size PNGs from bench/bench_scan.py, damaged four ways.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_incremental import link_tree  # bench/ is on sys.path when run as a script

from sanitize import damage
from sanitize.check import verify_file

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "data" / "bench"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def damaged_sources(real: list[Path], folder: Path, count: int = 60) -> list[Path]:
    """Clean real-size PNGs damaged four ways: late zero-fill, truncation, bit flip, zero tail."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = [
        lambda b: damage.zero_fill_in_last_idat(b, 0.5),
        lambda b: damage.truncate(b, len(b) // 2),
        lambda b: damage.flip_bit(b, len(b) // 3, 3),
        lambda b: damage.zero_fill_tail(b, len(b) * 3 // 4),
    ]
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        if not path.exists():
            path.write_bytes(kinds[i % len(kinds)](real[i % len(real)].read_bytes()))
        paths.append(path)
    return paths


def sanitize(*args: str) -> str:
    cmd = [sys.executable, "-m", "sanitize", *args, "--no-progress"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def build_times(out: Path, repeat: int) -> None:
    jobs_all = os.cpu_count() or 1
    print("\n1. sanitize report, 1,000 thumbnails")
    times: dict[int, list[float]] = {1: [], jobs_all: []}
    for _ in range(repeat):
        for jobs in times:
            started = time.perf_counter()
            sanitize("report", "--out", str(out), "--jobs", str(jobs), "--thumbnails", "1000")
            times[jobs].append(time.perf_counter() - started)
    serial = statistics.median(times[1])
    for jobs, samples in times.items():
        median = statistics.median(samples)
        print(f"  --jobs {jobs:<3}{median:>7.2f} s  {serial / median:>5.2f}x")
    size = (out / "report.html").stat().st_size
    print(f"  report.html: {size / 1e6:.2f} MB")


# Each step runs inside the page and returns its own milliseconds, so WebDriver's round trip
# is not counted: from the event to the moment the row count shows the new view.
STEP = """
const done = arguments[arguments.length - 1];
const count = document.getElementById('count'), before = count.textContent;
const started = performance.now();
%s
(function poll() {
  if (count.textContent === before) return requestAnimationFrame(poll);
  document.body.offsetHeight;  // force layout
  done(performance.now() - started);
})();
"""
STEPS = {
    "next page": "document.getElementById('next').click();",
    "filter by type": """const s = document.getElementById('type-filter');
        s.selectedIndex = 1; s.dispatchEvent(new Event('change'));""",
    "search a path*": """const q = document.getElementById('search');
        q.value = 'scene_00042/'; q.dispatchEvent(new Event('input'));""",
}


def page_times(page: Path, repeat: int) -> None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("\n2. page: skipped (pip install -e '.[dev]' for selenium)")
        return
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        print("\n2. page: skipped (apt-get install chromium chromium-driver)")
        return
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    samples: dict[str, list[float]] = {"load until ready": [], **{name: [] for name in STEPS}}
    try:
        for _ in range(repeat):
            driver.get(page.as_uri())  # returns after the load event: the page script has run
            timing = driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                "return [t.loadEventEnd, document.body.dataset.ready];"
            )
            assert timing[1] == "true", "the page did not finish rendering"
            samples["load until ready"].append(timing[0])
            for name, body in STEPS.items():
                samples[name].append(driver.execute_async_script(STEP % body))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"\n2. The page in headless Chromium, 10,000 rows (median of {repeat})")
    for name, values in samples.items():
        print(f"  {name:<18}{statistics.median(values):>8.1f} ms")
    print("  * includes the search box's 120 ms debounce")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    real = [
        p
        for p in sorted((BENCH / "tree").rglob("*.png"))[:200]
        if p.is_file() and not p.is_symlink() and verify_file(str(p)).format == "PNG"
    ]
    if not real:
        sys.exit("run bench/bench_scan.py first: it builds data/bench/tree")
    sources = damaged_sources(real, BENCH / "damaged-sources")
    tree = link_tree(BENCH / f"damaged{args.images // 1000}k", sources, args.images)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        scan = sanitize("scan", str(tree), "--out", tmp, "--state", f"{tmp}/state", "--json")
        summary = json.loads(scan)
        print(f"scanned {args.images:,} images: {summary['damaged']:,} damaged")
        build_times(out, args.repeat)
        page_times(out / "report.html", max(args.repeat, 5))


if __name__ == "__main__":
    main()
