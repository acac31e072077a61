"""The method registry is the one list of methods: config, compare's spec, plots, findings and the card read it."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from hftl.compare import findings, plots
from hftl.compare.spec import ALL_METHODS, MethodLearningRates, MethodOverrides
from hftl.config import METHODS, MethodConfig, load_config
from hftl.deploy.model_card import render_card
from hftl.errors import ModelError
from hftl.run.methods import all_methods, display_name, get_method, method_names


def test_every_list_of_methods_is_the_registry():
    names = method_names()
    assert set(names) == set(METHODS) == set(typing.get_args(typing.get_type_hints(MethodConfig)["name"]))
    assert names == ALL_METHODS
    assert tuple(f.name for f in dataclasses.fields(MethodLearningRates)) == names
    assert tuple(f.name for f in dataclasses.fields(MethodOverrides)) == names
    assert set(plots.METHOD_COLORS) == set(names)
    assert set(findings.TRANSFER_METHODS) == {m.name for m in all_methods() if m.pretrained} == set(names) - {"scratch"}


def test_what_each_method_is():
    assert [m.name for m in all_methods() if m.saves_adapter] == ["lora"]
    assert [m.name for m in all_methods() if not m.changes_backbone] == ["linear_probe"]
    assert get_method("lp_ft").fit is not get_method("full").fit  # its two phases
    assert display_name("lp_ft") == "linear probe, then full fine-tuning (LP-FT)" and display_name("new") == "new"
    with pytest.raises(ModelError, match="unknown method 'dora'"):
        get_method("dora")


def test_the_card_calls_a_method_by_its_registered_name():
    results = {
        "run": {"name": "r", "modality": "text", "method": "linear_probe", "model": "someone/base", "dataset": "d",
                "seed": 0},
        "params": {"trainable": 1, "total": 10},
        "data": {"labels": ["a", "b"], "train": 2, "validation": 2, "test": 2},
        "train": {"runtime_s": 1.0, "samples_per_second": 2.0, "steps": 1, "total_steps": 1},
    }  # fmt: skip
    config = load_config(None, ["method.name=linear_probe"]).to_dict()
    card = render_card(what="merged", repo_id="me/m", results=results, config=config, base_model="someone/base")
    assert "(linear probe, merged into the weights)" in card
