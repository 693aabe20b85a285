"""`panovlm clean`: plans on fake caches, run folders and wandb folders; the dry run deletes
nothing, --yes deletes exactly the plan, nothing outside the roots changes, and the executor
re-checks each item before acting."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from panovlm.cli import main
from panovlm.hygiene import execute as execute_module
from panovlm.hygiene.checkpoints_retention import RetentionPolicy, scan_checkpoints
from panovlm.hygiene.execute import execute
from panovlm.hygiene.hf_cache import HfPolicy, scan_hf_cache
from panovlm.hygiene.pycache import scan_pycache
from panovlm.hygiene.roots import RootError, resolve_root
from panovlm.hygiene.wandb_runs import scan_wandb
from tests.fakedisk import (
    DAY,
    REV_EVIL_DETACHED,
    REV_OLD,
    age,
    fake_hf_cache,
    fake_runs,
    fake_wandb,
    listing,
    write,
)


class World:
    """Every root of every category, plus `outside` (symlink targets) and `elsewhere`."""

    def __init__(self, tmp: Path) -> None:
        tmp = tmp.resolve()
        self.tmp = tmp
        self.outside = tmp / "outside"
        self.elsewhere = write(tmp / "elsewhere" / "precious.bin", b"keep me" * 10).parent
        self.project = tmp / "project"
        write(self.project / "pkg" / "mod.py", "x = 1\n")
        write(self.project / "pkg" / "__pycache__" / "mod.cpython-311.pyc", b"\0" * 500)
        write(self.project / "tests" / "__pycache__" / "t.cpython-311.pyc", b"\0" * 300)
        write(self.project / ".venv" / "lib" / "__pycache__" / "site.pyc", b"\0" * 200)
        write(self.project / "venv2" / "pyvenv.cfg", "home = /usr\n")
        write(self.project / "venv2" / "lib" / "__pycache__" / "x.pyc", b"\0" * 100)
        write(self.outside / "pyc" / "__pycache__" / "foreign.pyc", b"\0" * 100)
        (self.project / "linked").symlink_to(self.outside / "pyc", target_is_directory=True)
        self.hf = fake_hf_cache(tmp / "hub", self.outside)
        self.runs = fake_runs(tmp / "runs", self.outside)
        self.wandb = fake_wandb(tmp / "wandbroot", self.outside)
        self.roots = [self.project, self.hf.root, self.runs.root, self.wandb.root]

    def args(self, *extra: str) -> list[str]:
        return [
            "clean",
            "--project", str(self.project),
            "--hf-cache", str(self.hf.root),
            "--runs-dir", str(self.runs.root),
            "--wandb-dir", str(self.wandb.root),
            *extra,
        ]  # fmt: skip

    def everything(self) -> dict:
        return listing(self.tmp)

    def beyond_roots(self) -> dict:
        return listing(self.outside, self.elsewhere)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.chdir(tmp_path)  # no configs/default.yaml here: roots come from the options
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    return World(tmp_path)


def json_run(capsys, argv: list[str]) -> tuple[int, dict]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


# --- the command: dry run, --yes, roots ------------------------------------------------------


def test_the_dry_run_deletes_nothing(world: World, capsys) -> None:
    before = world.everything()
    code = main(world.args())
    out = capsys.readouterr().out
    assert code == 0
    assert "Dry run: nothing was changed" in out
    for category in ("pycache", "hf", "checkpoints", "wandb", "total"):
        assert category in out
    assert world.everything() == before


def test_yes_deletes_exactly_the_plan_and_nothing_outside_the_roots(world: World, capsys) -> None:
    before, beyond = world.everything(), world.beyond_roots()
    code, plan = json_run(capsys, world.args())
    assert code == 0 and plan["dry_run"] and plan["result"] is None
    planned = {Path(item["path"]) for item in plan["items"]}
    assert planned, "the fake world has something to clean"

    code, done = json_run(capsys, world.args("--yes"))
    assert code == 0
    assert {Path(item["path"]) for item in done["items"]} == planned
    statuses = {o["path"]: o["status"] for o in done["result"]["outcomes"]}
    assert set(statuses.values()) == {"deleted"}

    after = world.everything()
    removed = {Path(p) for p in before.keys() - after.keys()}
    assert after.keys() <= before.keys()
    # everything removed is a planned item or inside one, and every planned item is gone
    assert all(any(p == q or q in p.parents for q in planned) for p in removed)
    assert planned <= removed
    assert all(after[p] == before[p] for p in after)  # nothing left behind was modified
    assert world.beyond_roots() == beyond
    assert done["result"]["freed_bytes"] == done["expected_freed_bytes"] > 0


def test_the_plan_per_category_is_what_each_policy_says(world: World, capsys) -> None:
    _, plan = json_run(capsys, world.args())
    by_category: dict[str, set[Path]] = {}
    for item in plan["items"]:
        by_category.setdefault(item["category"], set()).add(Path(item["path"]))
    assert by_category["pycache"] == {
        world.project / "pkg" / "__pycache__",
        world.project / "tests" / "__pycache__",
    }
    assert by_category["checkpoints"] == world.runs.doomed
    assert by_category["wandb"] == world.wandb.doomed
    assert world.hf.orphan_repo in by_category["hf"]
    assert {c["category"]: c["bytes"] for c in plan["categories"]}["pycache"] == 800


def test_a_refused_or_missing_root_is_a_one_line_error(
    world: World, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(world.tmp / "home"))
    (world.tmp / "home").mkdir()
    cases = {
        ("--hf-cache", "/"): "filesystem root",
        ("--runs-dir", str(world.tmp / "home")): "home folder itself",
        ("--wandb-dir", str(world.tmp)): "holds the home folder",
        ("--runs-dir", str(world.tmp / "nope")): "does not exist",
    }
    before = world.everything()
    for (option, value), message in cases.items():
        argv = world.args()
        argv[argv.index(option) + 1] = value
        assert main([*argv, "--yes"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and err.startswith("panovlm clean:") and "\n" not in err
    assert world.everything() == before


def test_resolve_root_refuses_the_broad_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for bad in ("/", tmp_path / "home", tmp_path, tmp_path / "missing"):
        with pytest.raises(RootError):
            resolve_root(bad, "root")
    (tmp_path / "link").symlink_to(tmp_path / "home")
    with pytest.raises(RootError, match="home folder itself"):
        resolve_root(tmp_path / "link", "root")


def test_default_categories_skip_missing_roots_and_named_ones_require_them(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "no-wandb"))
    code, plan = json_run(capsys, ["clean"])
    assert code == 0
    assert set(plan["not_scanned"]) == {"hf", "checkpoints", "wandb"}
    assert main(["clean", "hf"]) == 2
    assert "no-cache" in capsys.readouterr().err
    code, plan = json_run(capsys, ["clean", "all"])  # all that applies
    assert code == 0 and set(plan["not_scanned"]) == {"hf", "checkpoints", "wandb", "broken"}


def test_run_from_the_home_folder_the_default_project_root_is_refused_not_walked(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    home = tmp_path / "home"
    write(home / "pkg" / "__pycache__" / "m.pyc", b"\0" * 10)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    code, plan = json_run(capsys, ["clean", "--yes"])
    assert code == 0 and "home folder itself" in plan["not_scanned"]["pycache"]
    assert (home / "pkg" / "__pycache__" / "m.pyc").exists()
    assert main(["clean", "pycache"]) == 2


def test_roots_come_from_the_config_paths_and_the_environment(
    world: World, capsys, monkeypatch
) -> None:
    config = world.tmp / "c.yaml"
    config.write_text(
        f"paths: {{runs_dir: {world.runs.root}, wandb_dir: {world.wandb.root}}}\n"
        "training: {stage_configs: {s: {batch_size: 1, epochs: 1, lr: 0.1}}}\n"
    )
    monkeypatch.setenv("HF_HOME", str(world.tmp))
    (world.tmp / "hub").rename(world.tmp / "hub2")
    (world.tmp / "hub").mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(world.tmp / "hub2"))
    _, plan = json_run(capsys, ["clean", "--config", str(config)])
    assert plan["roots"]["checkpoints"] == str(world.runs.root)
    assert plan["roots"]["wandb"] == str(world.wandb.root)
    assert plan["roots"]["hf"] == str(world.tmp / "hub2")  # HF_HUB_CACHE wins over HF_HOME


def test_a_prompt_at_a_terminal_acts_only_on_y(world: World, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    before = world.everything()
    monkeypatch.setattr("builtins.input", lambda question: "n")
    assert main(world.args("pycache")) == 0
    assert world.everything() == before
    monkeypatch.setattr("builtins.input", lambda question: "y")
    assert main(world.args("pycache", "--dry-run")) == 0  # never asks
    assert world.everything() == before
    capsys.readouterr()
    assert main(world.args("pycache")) == 0
    assert "Freed 800 B (planned 800 B): 2 deleted" in capsys.readouterr().out
    assert not (world.project / "pkg" / "__pycache__").exists()


# --- hf ------------------------------------------------------------------------------------


def test_hf_plans_unreferenced_revisions_partial_downloads_and_stale_locks(
    tmp_path: Path,
) -> None:
    cache = fake_hf_cache(tmp_path / "hub", tmp_path / "outside")
    held = os.open(cache.held_lock, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a download under way
    try:
        scan = scan_hf_cache(cache.root)
    finally:
        os.close(held)
    planned = {item.path for item in scan.items}
    assert planned == {
        cache.orphan_repo,
        cache.detached_snapshot,
        cache.detached_blob,
        cache.root / "models--org--evil" / "snapshots" / REV_EVIL_DETACHED,
        cache.old_incomplete,
        cache.stale_lock,
    }
    assert not planned & cache.kept
    assert cache.outside not in planned
    assert any("outside the cache" in w and str(cache.outside) in w for w in scan.warnings)
    sizes = {item.path: item.bytes for item in scan.items}
    assert sizes[cache.detached_blob] == cache.detached_blob.stat().st_size
    assert sizes[cache.orphan_repo] == 1800


def test_hf_cleaning_leaves_a_consistent_cache_and_the_outside_file(tmp_path: Path) -> None:
    from huggingface_hub import scan_cache_dir

    cache = fake_hf_cache(tmp_path / "hub", tmp_path / "outside")
    outside = cache.outside.read_bytes()
    result = execute(scan_hf_cache(cache.root).items)
    assert not result.failed and not result.skipped
    assert cache.outside.read_bytes() == outside
    info = scan_cache_dir(cache.root)
    assert info.warnings == []
    assert all(len(r.refs) for repo in info.repos for r in repo.revisions)
    assert {f"{repo.repo_type}/{repo.repo_id}" for repo in info.repos} == {
        "model/org/kept",
        "model/org/evil",
        "dataset/org/data",
    }
    assert all(path.exists() for path in cache.kept - {cache.held_lock})  # not held here
    kept_snapshot = cache.root / "models--org--kept" / "snapshots" / ("a" * 40)
    assert (kept_snapshot / "sub" / "model.bin").read_bytes() == b"main weights" * 100


def test_huggingface_hub_own_execute_deletes_the_outside_file(tmp_path: Path) -> None:
    """Why we never call `DeleteCacheStrategy.execute()`, pinned against huggingface_hub (2.4).
    Should a release stop following outside links, this fails; our filter stays right anyway."""
    from huggingface_hub import scan_cache_dir

    cache = fake_hf_cache(tmp_path / "hub", tmp_path / "outside")
    strategy = scan_cache_dir(cache.root).delete_revisions(REV_EVIL_DETACHED)
    assert cache.outside in strategy.blobs
    strategy.execute()
    assert not cache.outside.exists()


def test_hf_unused_repos_go_only_when_asked(tmp_path: Path) -> None:
    cache = fake_hf_cache(tmp_path / "hub", tmp_path / "outside")
    data = cache.root / "datasets--org--data"
    for blob in (data / "blobs").iterdir():
        age(blob, 100 * DAY)
    assert data not in {i.path for i in scan_hf_cache(cache.root).items}
    scan = scan_hf_cache(cache.root, HfPolicy(unused_days=30))
    reasons = {i.path: i.reason for i in scan.items}
    assert "not used for 100 days" in reasons[data]
    assert cache.root / "models--org--kept" not in reasons  # used 2 days ago


def test_hf_a_fresh_or_locked_partial_download_is_left_alone(tmp_path: Path) -> None:
    cache = fake_hf_cache(tmp_path / "hub", tmp_path / "outside")
    lock = cache.root / ".locks" / "models--org--kept" / ("1" * 64 + ".lock")
    write(lock, b"")
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        scan = scan_hf_cache(cache.root)
        items = [i for i in scan.items if i.path == cache.old_incomplete]
        assert not items and any("being downloaded" in w for w in scan.warnings)
    finally:
        os.close(fd)
    items = [i for i in scan_hf_cache(cache.root).items if i.path == cache.old_incomplete]
    assert items and items[0].lock == lock
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a download starts between the plan and the execution
    try:
        (outcome,) = execute(items).outcomes
    finally:
        os.close(fd)
    assert outcome.status == "skipped" and "locked" in outcome.message
    assert cache.old_incomplete.exists()


# --- checkpoints, wandb, pycache ------------------------------------------------------------


def test_retention_keeps_newest_best_only_and_recent(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path / "runs", tmp_path / "outside")
    scan = scan_checkpoints(runs.root)
    assert {i.path for i in scan.items} == runs.doomed
    assert not {i.path for i in scan.items} & runs.kept
    run = tmp_path / "runs" / "run-d"
    for i in range(4):  # four files written within the hour: never touched, whatever the policy
        write(run / f"step{i}.pt", "x" * 10, old=60 * (i + 1))
    write(run / "step9.pt", "x" * 10, old=2 * 3600)
    aggressive = RetentionPolicy(keep_newest=1, older_than_days=0)
    doomed = {i.path for i in scan_checkpoints(runs.root, aggressive).items if i.path.parent == run}
    assert doomed == {run / "step9.pt"}


def test_retention_with_an_unreadable_metric_record_keeps_no_best(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path / "runs", tmp_path / "outside")
    (runs.root / "run-a" / "checkpoints.json").write_text("{not json")
    scan = scan_checkpoints(runs.root)
    assert runs.root / "run-a" / "vision-s2.pt" in {i.path for i in scan.items}
    assert any("checkpoints.json is unreadable" in w for w in scan.warnings)


def test_wandb_never_touches_unsynced_offline_runs(tmp_path: Path) -> None:
    wb = fake_wandb(tmp_path / "wandbroot", tmp_path / "outside")
    scan = scan_wandb(wb.root, older_than_days=30)
    assert {i.path for i in scan.items} == wb.doomed
    assert {i.path for i in scan_wandb(wb.root / "wandb", older_than_days=30).items} == wb.doomed
    everything_old = {i.path for i in scan_wandb(wb.root, older_than_days=0).items}
    assert not any("offline-run-20240103" in str(p) for p in everything_old)


def test_pycache_skips_venvs_hidden_folders_and_symlinks(world: World) -> None:
    found = {i.path for i in scan_pycache(world.project).items}
    assert found == {world.project / "pkg" / "__pycache__", world.project / "tests" / "__pycache__"}


# --- the executor re-checks ---------------------------------------------------------------


def test_an_item_that_changed_or_vanished_since_the_plan_is_skipped(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path / "runs", tmp_path / "outside")
    items = {i.path.name: i for i in scan_checkpoints(runs.root).items if "run-a" in str(i.path)}
    (runs.root / "run-a" / "vision-s1.pt").write_text("a run rewrote it")
    (runs.root / "run-a" / "vision-s3.pt").unlink()
    result = execute(items.values())
    by_name = {o.item.path.name: o for o in result.outcomes}
    assert by_name["vision-s1.pt"].status == "skipped"
    assert "changed since the plan" in by_name["vision-s1.pt"].message
    assert by_name["vision-s3.pt"].status == "skipped"
    assert "vanished" in by_name["vision-s3.pt"].message
    assert by_name["vision-s4.pt"].status == "deleted"
    assert result.freed_bytes == items["vision-s4.pt"].bytes + items[".vision-s8.pt.tmp-4242"].bytes
    assert (runs.root / "run-a" / "vision-s1.pt").read_text() == "a run rewrote it"


def test_a_folder_swapped_for_a_symlink_out_of_the_root_is_not_followed(
    tmp_path: Path,
) -> None:
    wb = fake_wandb(tmp_path / "wandbroot", tmp_path / "outside")
    victim = write(tmp_path / "outside" / "victim" / "data.bin", b"precious")
    items = scan_wandb(wb.root).items
    target = items[0].path
    import shutil

    shutil.rmtree(target)
    target.symlink_to(victim.parent, target_is_directory=True)
    outcomes = {o.item.path: o for o in execute(items).outcomes}
    assert outcomes[target].status == "skipped" and "now a link" in outcomes[target].message
    assert victim.read_bytes() == b"precious"


def test_an_item_whose_folder_now_leads_outside_the_root_is_skipped(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path / "runs", tmp_path / "outside")
    items = scan_checkpoints(runs.root).items
    run_c = runs.root / "run-c"
    (tmp_path / "outside" / "run-c").mkdir(parents=True)
    copy = tmp_path / "outside" / "run-c" / "checkpoints"
    run_c.joinpath("checkpoints").rename(copy)
    run_c.joinpath("checkpoints").symlink_to(copy, target_is_directory=True)
    outcomes = [o for o in execute(items).outcomes if "run-c" in str(o.item.path)]
    assert outcomes and all(o.status == "skipped" and "outside" in o.message for o in outcomes)
    assert len(list(copy.iterdir())) == 5


def test_a_file_that_cannot_be_removed_is_reported_and_the_rest_goes_on(
    world: World, capsys, monkeypatch
) -> None:
    blocked = world.runs.root / "run-a" / "vision-s3.pt"
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if Path(path) == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(execute_module.os, "unlink", unlink)
    code = main(world.args("checkpoints", "--yes"))
    out = capsys.readouterr().out
    assert code == 1
    assert f"failed: {blocked}: Permission denied" in out
    assert blocked.exists()
    assert not (world.runs.root / "run-a" / "vision-s4.pt").exists()


def test_planned_bytes_of_a_whole_revision_match_huggingface_hub(tmp_path: Path) -> None:
    from huggingface_hub import scan_cache_dir

    cache = fake_hf_cache(tmp_path / "hub", tmp_path / "outside")
    strategy = scan_cache_dir(cache.root).delete_revisions(REV_OLD)
    ours = [i for i in scan_hf_cache(cache.root).items if "models--org--kept" in str(i.path)]
    revision_bytes = sum(i.bytes for i in ours if i.lock is None)
    assert revision_bytes == strategy.expected_freed_size


# --- broken: quarantine and restore -----------------------------------------------------------


class Dataset:
    def __init__(self, tmp: Path) -> None:
        tmp = tmp.resolve()
        self.data = tmp / "data"
        self.outside = write(tmp / "outside" / "elsewhere.png", b"not in the data root")
        self.bad = {
            "scene_00001/panorama/bad1.png": write(self.data / "scene_00001/panorama/bad1.png",
                                                   b"\x89PNG broken" * 30, old=5 * DAY),
            "SUN360/bad2.jpg": write(self.data / "SUN360/bad2.jpg", b"\xff\xd8 cut", old=DAY),
        }  # fmt: skip
        write(self.data / "scene_00001/panorama/good.png", b"\x89PNG fine")
        (self.data / "SUN360" / "link.png").symlink_to(self.outside)
        self.manifests = tmp / "manifests"
        rows = [*self.bad, "gone.png", "SUN360/link.png", "../outside/elsewhere.png"]
        lines = ["url,relpath,error_type,error"] + [
            f"{self.data / r},{r},truncated,OSError: image file is truncated" for r in rows
        ]
        write(self.manifests / "corruption_report.csv", "\n".join(lines) + "\n")
        write(self.manifests / "summary.json", json.dumps({"data_root": str(self.data)}))
        self.report = self.manifests / "corruption_report.csv"
        self.quarantine = self.manifests / "quarantine"

    def clean(self, *extra: str) -> list[str]:
        return ["clean", "broken", "--report", str(self.report), *extra]


def test_broken_images_move_to_quarantine_and_restore_byte_identical(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ds = Dataset(tmp_path)
    original, outside = listing(ds.data), listing(ds.outside.parent)

    code, plan = json_run(capsys, ds.clean())
    assert code == 0 and listing(ds.data) == original and not ds.quarantine.exists()
    assert {Path(i["path"]) for i in plan["items"]} == set(ds.bad.values())
    assert plan["expected_freed_bytes"] == 0 and plan["expected_moved_bytes"] > 0
    skipped = " ".join(plan["warnings"])
    assert "gone.png: missing" in skipped and "a symlink" in skipped and "../outside" in skipped

    code, done = json_run(capsys, ds.clean("--yes"))
    assert code == 0 and {o["status"] for o in done["result"]["outcomes"]} == {"moved"}
    for rel, path in ds.bad.items():
        assert not path.exists()
        assert listing(ds.quarantine)[str(ds.quarantine / rel)][1:] == original[str(path)][1:]
    journal = (ds.quarantine / ".panovlm-quarantine.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["relpath"] for line in journal) == sorted(ds.bad)
    assert listing(ds.outside.parent) == outside
    code, again = json_run(capsys, ds.clean())
    assert again["items"] == [] and not any("bad" in w for w in again["warnings"])

    code, restored = json_run(capsys, ds.clean("--restore", "--yes"))
    assert code == 0 and len(restored["items"]) == 2
    assert listing(ds.data) == original
    assert sorted(p.name for p in ds.quarantine.iterdir()) == [
        ".panovlm-quarantine.json",
        ".panovlm-quarantine.jsonl",
    ]
    events = [json.loads(line)["event"] for line in
              (ds.quarantine / ".panovlm-quarantine.jsonl").read_text().splitlines()]  # fmt: skip
    assert events.count("quarantined") == 2 and events.count("restored") == 2


def test_restore_never_overwrites_a_file_that_reappeared(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = Dataset(tmp_path)
    assert main(ds.clean("--yes")) == 0
    ds.bad["SUN360/bad2.jpg"].write_bytes(b"a fresh download")
    code, restored = json_run(capsys, ds.clean("--restore", "--yes"))
    assert code == 0
    assert [Path(i["path"]) for i in restored["items"]] == [
        ds.quarantine / "scene_00001/panorama/bad1.png"
    ]
    assert any("exists again" in w for w in restored["warnings"])
    assert ds.bad["SUN360/bad2.jpg"].read_bytes() == b"a fresh download"
    assert (ds.quarantine / "SUN360/bad2.jpg").read_bytes() == b"\xff\xd8 cut"


def test_quarantine_across_filesystems_copies_verifies_then_removes(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    import errno

    monkeypatch.chdir(tmp_path)
    ds = Dataset(tmp_path)
    original = listing(ds.data)
    real_link = os.link

    def link(src, dst, *args, **kwargs):
        if str(src).startswith(str(ds.data)):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(execute_module.os, "link", link)
    assert main(ds.clean("--yes")) == 0
    for rel, path in ds.bad.items():
        assert not path.exists()
        moved = ds.quarantine / rel
        assert listing(ds.quarantine)[str(moved)][1:] == original[str(path)][1:]
    assert not [p for p in ds.quarantine.rglob("*tmp-*")]


def test_broken_is_never_a_default_category_and_purge_deletes_only_the_quarantine(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ds = Dataset(tmp_path)
    _, plan = json_run(capsys, ["clean", "--report", str(ds.report)])
    assert not [i for i in plan["items"] if i["category"] == "broken"]
    assert main(ds.clean("--yes")) == 0
    data_after = listing(ds.data)
    code, purged = json_run(capsys, ds.clean("--purge-quarantine", "--yes"))
    assert code == 0 and purged["result"]["freed_bytes"] == sum(
        len(p) for p in (b"\x89PNG broken" * 30, b"\xff\xd8 cut")
    )
    assert listing(ds.data) == data_after
    assert not [p for p in ds.quarantine.rglob("*") if p.is_file() and "panovlm" not in p.name]


def test_a_quarantine_inside_the_data_root_is_refused(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = Dataset(tmp_path)
    assert main(ds.clean("--quarantine", str(ds.data / "q"), "--yes")) == 2
    assert "must not contain each other" in capsys.readouterr().err
