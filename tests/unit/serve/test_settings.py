"""ServeSettings refuses what no runtime can serve before any worker starts."""

from __future__ import annotations

import pytest

from hftl.errors import ConfigError
from hftl.serve.settings import ServeSettings


def test_bf16_is_an_openvino_hint_only_and_survives_the_trip_to_the_workers():
    settings = ServeSettings(export_dir="RUN/openvino", backend="openvino", precision="bf16")
    assert ServeSettings.from_json(settings.to_json()) == settings
    with pytest.raises(ConfigError, match="onnxruntime has no bf16 path on CPU"):
        ServeSettings(export_dir="RUN/onnx", backend="onnxruntime", precision="bf16")
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        ServeSettings(export_dir="RUN/onnx", precision="int8")


def test_pytorch_serves_fp32_or_bf16_and_has_no_int8():
    assert ServeSettings(export_dir="RUN/model", backend="torch", precision="bf16").precision == "bf16"
    with pytest.raises(ConfigError, match="torch has no int8 model"):
        ServeSettings(export_dir="RUN/model", backend="torch", quantized=True)
