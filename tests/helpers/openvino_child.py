"""Run OpenVINO work for tests/unit/deploy/test_openvino.py in its own process, printing the results as JSON.

OpenVINO's CPU plugin keeps TBB worker threads alive in the process that compiled a model; a later fork() in the
same pytest process (DataLoader workers, concurrent zoo builds) then crashed the test run. So the tests run OpenVINO
here, in a child process, and assert on what it reports.

    python tests/helpers/openvino_child.py MODEL_DIR OUT_DIR [--parity-atol X]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TEXTS = ["the team win the game", "money market news big", "a film plot actor song"] * 12


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--parity-atol", type=float, default=1e-4)
    args = p.parse_args(argv)
    from transformers import AutoTokenizer

    from hftl.deploy.onnx import ExportError
    from hftl.deploy.openvino import OpenVinoClassifier, export_openvino
    from hftl.deploy.torch_backend import TorchClassifier

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    features = dict(tokenizer(TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="np"))
    labels = np.array([0, 1, 2] * 12)
    try:
        report = export_openvino(args.model_dir, args.out_dir, "text-classification", features, labels,
                                 calibration=features, parity_atol=args.parity_atol, num_threads=1,
                                 latency_repeats=2)  # fmt: skip
    except ExportError as err:
        print(json.dumps({"error": str(err)}))
        return
    ov = OpenVinoClassifier(args.out_dir).logits(features, batch_size=8)
    torch_logits = TorchClassifier(args.model_dir).logits(features)
    int8_labels = [label for label, _ in OpenVinoClassifier(args.out_dir, quantized=True).classify(features)]
    print(json.dumps({"report": report, "max_diff_vs_torch": float(np.abs(ov - torch_logits).max()),
                      "int8_labels": sorted(set(int8_labels))}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
