"""The recipe's stages run alone: setup builds without training, fit trains, score tests, save writes the run."""

from __future__ import annotations

from pathlib import Path

from hftl.config import load_config
from hftl.recipe import fit, save, score, setup
from hftl.run.record import read_record


def test_setup_fit_score_save_each_alone(quick_overrides):
    out = Path(next(o for o in quick_overrides if o.startswith("output.dir=")).split("=", 1)[1])
    ready = setup(load_config(None, [*quick_overrides, "method.name=linear_probe", "training.epochs=1"]))
    assert (out / "config.yaml").is_file() and not (out / "results.json").exists()
    assert ready.params["trainable"] < ready.params["total"] and set(ready.prepared) == {"train", "validation", "test"}
    fitted = fit(ready)
    assert fitted.result.state.step == 6 and fitted.probe_result is None and not (out / "results.json").exists()
    scores = score(ready, fitted)
    assert 0.0 <= scores.test["accuracy"] <= 1.0 and not (out / "results.json").exists()
    results = save(ready, fitted, scores)
    assert read_record(out).to_dict() == results and results["test"] == scores.test
    assert (out / "model" / "model.safetensors").is_file()
