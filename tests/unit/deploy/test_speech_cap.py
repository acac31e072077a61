"""The greedy cap recorded with a speech export (export_report.json's max_new_tokens): read back, or refused."""

from __future__ import annotations

import json

import pytest

from hftl.deploy.speech_runtime import MAX_NEW_TOKENS, recorded_max_new_tokens
from hftl.errors import ExportError


def test_the_recorded_cap_is_read_back(tmp_path):
    (tmp_path / "export_report.json").write_text(json.dumps({"max_new_tokens": 40}))
    assert recorded_max_new_tokens(tmp_path) == 40


def test_an_export_without_a_recorded_cap_gets_the_default(tmp_path):
    assert recorded_max_new_tokens(tmp_path) == MAX_NEW_TOKENS  # no report at all
    (tmp_path / "export_report.json").write_text(json.dumps({"task": "automatic-speech-recognition"}))
    assert recorded_max_new_tokens(tmp_path) == MAX_NEW_TOKENS  # written before the cap was recorded


@pytest.mark.parametrize("text", ['{"max_new_tokens": 0}', '{"max_new_tokens": "96"}', "not json", "[1, 2]"])
def test_a_bad_report_is_refused_naming_the_file(tmp_path, text):
    (tmp_path / "export_report.json").write_text(text)
    with pytest.raises(ExportError, match="export_report.json"):
        recorded_max_new_tokens(tmp_path)
