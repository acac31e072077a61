"""The config schema: YAML instances, key=value overrides, and errors that name the key and the file."""

from __future__ import annotations

import pytest
import yaml

from hftl import modalities
from hftl.config import Config, describe, load_config, modality_sections, save_config
from hftl.errors import ConfigError
from hftl.modalities import Modality, get_modality
from tests.helpers.paths import REPO

CONFIG_ROOT = REPO / "recipes" / "configs"
ALL_CONFIGS = sorted(CONFIG_ROOT.rglob("*.yaml"))


def test_config_files_exist_for_every_modality_folder():
    assert ALL_CONFIGS, "no recipe configs found"
    assert {p.parent.name for p in ALL_CONFIGS} >= {"text"}


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_every_recipe_config_loads_and_says_how_to_run_it(path):
    cfg = load_config(path)
    assert cfg.modality == path.parent.name
    assert cfg.method.name in path.stem
    first_lines = path.read_text().splitlines()[:4]
    assert any(str(path.relative_to(CONFIG_ROOT.parent.parent)) in line for line in first_lines), (
        "a recipe config starts with a comment holding the command that runs it"
    )


def test_defaults_and_overrides():
    cfg = load_config(None, ["training.learning_rate=1e-3", "method.lora.r=4", "name=x", "data.labels=[a, b]"])
    assert cfg.training.learning_rate == pytest.approx(1e-3)
    assert cfg.method.lora.r == 4
    assert cfg.name == "x" and cfg.run_name == "x"
    assert cfg.data.labels == ["a", "b"]
    assert cfg.training.batch_size == Config().training.batch_size  # untouched default


def test_override_wins_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 7\n  learning_rate: 5e-4\n")
    cfg = load_config(path, ["training.epochs=2"])
    assert cfg.training.epochs == 2
    assert cfg.training.learning_rate == pytest.approx(5e-4)  # YAML 1.1 reads '5e-4' as text: still a float here


def test_yaml_booleans_mean_the_option_of_that_name(tmp_path):
    """YAML 1.1 reads `no` as False: `mixed_precision: no` is the option "no", in a file and on the command line."""
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  mixed_precision: no\n")
    assert load_config(path).training.mixed_precision == "no"
    assert load_config(None, ["training.mixed_precision=no"]).training.mixed_precision == "no"
    with pytest.raises(ConfigError, match=r"data\.on_bad_sample .*False is not one of \['error', 'skip'\]"):
        load_config(None, ["data.on_bad_sample=no"])


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'training\.lr'.*bad\.yaml"):
        load_config(path)


def test_unknown_section_and_override_key():
    with pytest.raises(ConfigError, match="unknown key 'optimizer'"):
        load_config(None, ["optimizer.lr=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'method\.lora\.rank'.*command line"):
        load_config(None, ["method.lora.rank=8"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.epochs=three", r"training\.epochs.*expected int"),
        ("training.epochs=true", r"training\.epochs.*expected int, got bool"),
        ("method.name=prompt", r"method\.name.*not one of"),
        ("method.lora.target_modules=query", r"method\.lora\.target_modules.*expected a list"),
        ("training=5", r"training.*expected a mapping"),
        ("epochs", r"expected key=value"),
    ],
)
def test_wrong_types_are_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_wrong_type_in_file_names_the_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("training:\n  batch_size: sixteen\n")
    with pytest.raises(ConfigError, match=r"training\.batch_size.*typo\.yaml"):
        load_config(path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.shots_per_class=5", "data.max_train_samples=10"], "at most one of"),
        (["data.validation_fraction=1.5"], r"data\.validation_fraction"),
        (["method.lora.r=0"], r"method\.lora\.r"),
        (["training.learning_rate=0"], r"training\.learning_rate"),
        (["text.max_length=2"], r"text\.max_length"),
    ],
)
def test_invalid_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(CONFIG_ROOT / "text" / "minilm_lora.yaml", ["training.seed=7"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["training"]["seed"] == 7


def test_every_field_has_help():
    rows = describe()
    assert len(rows) > 40
    assert [key for key, help_text, _ in rows if not help_text] == []


def test_the_modality_sections_come_from_the_modality_table():
    sections = modality_sections()
    for name in ("text", "vision", "audio"):
        assert sections[name] is get_modality(name).config_section
    assert list(sections)[:3] == ["text", "vision", "audio"]  # the table's order: saved configs keep it
    cfg = Config()
    assert cfg.vision is cfg.section("vision") and isinstance(cfg.vision, get_modality("vision").config_section)
    assert list(cfg.to_dict())[-len(sections):] == list(sections) and "sections" not in cfg.to_dict()
    with pytest.raises(AttributeError, match="no field or modality section 'video'"):
        _ = cfg.video


def test_a_modality_named_like_a_config_key_is_refused(monkeypatch):
    class DataModality(Modality):
        name = "data"
        config_section = get_modality("text").config_section

    monkeypatch.setitem(modalities._REGISTRY, "data", DataModality())  # removed again after the test
    with pytest.raises(ConfigError, match="modality 'data' cannot have a config section: 'data' is already a config key"):
        load_config(None, [])
