"""The serving runtimes' one table (hftl.deploy.backends) and the precision each variant runs in."""

from __future__ import annotations

import pytest

from hftl.deploy.backends import BACKENDS, backend_of
from hftl.deploy.default_variant import Choice
from hftl.deploy.openvino import inference_hint
from hftl.errors import ConfigError, HftlError


def test_every_runtime_names_its_fp32_timings_and_is_found_by_its_model_file(tmp_path):
    assert {name for name, spec in BACKENDS.items() if not spec.exported} == {"torch"}  # the run's own model
    for name, spec in BACKENDS.items():
        assert "fp32" in spec.variants  # the serving default is measured against fp32
        if not spec.exported:
            continue
        folder = tmp_path / name
        folder.mkdir()
        (folder / spec.marker).write_bytes(b"")
        assert backend_of(folder) == name
    with pytest.raises(HftlError, match="holds no model file a serving runtime reads"):
        backend_of(tmp_path)


def test_a_variant_runs_as_int8_or_in_its_precision_and_openvino_gets_the_matching_hint():
    assert (Choice("int8", "").quantized, Choice("int8", "").precision) == (True, "fp32")
    assert (Choice("bf16", "").quantized, Choice("bf16", "").precision) == (False, "bf16")
    assert (Choice("fp32", "").quantized, Choice("fp32", "").precision) == (False, "fp32")
    # fp32 must be asked for explicitly: OpenVINO runs the fp32 IR in bf16 on AMX / AVX512-BF16 CPUs otherwise
    assert inference_hint("fp32") == "f32" and inference_hint("bf16") == "bf16"
    with pytest.raises(ConfigError, match="OpenVINO serves precision fp32 or bf16, got 'int8'"):
        inference_hint("int8")
