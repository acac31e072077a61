"""The model card (README.md) of a pushed run: YAML metadata the Hub understands, then what a reader needs.

``render_card`` is a pure function of the run's ``results.json``, ``config.yaml`` (as dicts), the export report
(if any) and what is being pushed; it reads no files and knows nothing of tokens.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from hftl.deploy import speech_card
from hftl.modalities import Modality, get_modality
from hftl.run.methods import display_name
from hftl.run.record import RunRecord

# Model-card library per pushed kind (the Hub filters models by it).
LIBRARY = {"adapter": "peft", "merged": "transformers", "onnx": "onnx"}
_METRIC_NAMES = {
    "accuracy": "Accuracy",
    "f1_macro": "F1 (macro)",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    **speech_card.METRIC_NAMES,
}


def render_card(
    *,
    what: str,
    repo_id: str,
    results: RunRecord | dict[str, Any],
    config: dict[str, Any],
    export_report: dict[str, Any] | None = None,
    adapter_config: dict[str, Any] | None = None,
    base_model: str | None = None,
    base_for_code: str | None = None,
    dataset_id: str | None = None,
    revision: str | None = None,
    license: str | None = None,  # noqa: A002  (the Hub's key)
) -> str:
    """The README.md text: YAML front matter, then method, data, metrics, export and usage.

    Args:
        what: ``adapter``, ``merged`` or ``onnx``.
        repo_id: The repo being pushed to (named in the usage snippet and the model-index).
        results: the run record (``results.json``; plain data is read through ``RunRecord.from_dict``). config: ``config.yaml``. export_report: ``onnx/export_report.json`` or None.
        adapter_config: The pushed ``adapter_config.json`` (for LoRA details and the base); None without an adapter.
        base_model: Hub id of the base model, or None when it has none (a local folder): metadata only names Hub ids.
        base_for_code: What the adapter usage snippet loads as base (default: base_model).
        dataset_id: Hub id of the training data set, or None.
        revision: Branch pushed to; named in the snippet when not main.
        license: Hub license id, or None (then left out of the metadata and said so in the text).
    """
    if what not in LIBRARY:
        raise ValueError(f"what must be one of {sorted(LIBRARY)}, got {what!r}")
    if not isinstance(results, RunRecord):
        results = RunRecord.from_dict(results)
    modality = config.get("modality", "text")
    speech = speech_card.is_speech_run(results, config)
    task = speech_card.PIPELINE_TAG if speech else (export_report or {}).get("task") or f"{modality}-classification"
    metadata = _metadata(what, repo_id, results, config, task, base_model, dataset_id, license)
    if speech:
        export = speech_card.export_section(export_report, _table) if export_report else ""
        usage = speech_card.usage(what, repo_id, config, base_for_code or base_model, revision)
    else:
        export = _export(export_report) if export_report else ""
        usage = _usage(what, repo_id, results, config, base_for_code or base_model, adapter_config, revision)
    sections = [
        _summary(what, repo_id, results, config, base_model, license, speech),
        _method(results, config, adapter_config),
        _data(results, config, speech),
        _metrics(results),
        export,
        usage,
        _versions(results, export_report),
    ]
    body = "\n\n".join(s for s in sections if s)
    return f"---\n{metadata.to_yaml()}\n---\n\n{body}\n"


def _metadata(
    what: str,
    repo_id: str,
    results: RunRecord,
    config: dict[str, Any],
    task: str,
    base_model: str | None,
    dataset_id: str | None,
    license: str | None,  # noqa: A002
) -> ModelCardData:
    method = results.run.method
    tags = ["hftl", config.get("modality", "text"), task, method]
    tags += {"adapter": ["peft", "lora"], "merged": ["safetensors"], "onnx": ["onnx", "int8"]}[what]
    dataset_name = dataset_id or _short_name(config["data"]["source"])
    # The held-out test scores of the selected model; the loss is not a result worth indexing.
    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=dataset_id or dataset_name,
            dataset_name=dataset_name,
            dataset_split=config["data"].get("test_split") or "test",
            metric_type=key,
            metric_value=round(float(value), 6),
            metric_name=_METRIC_NAMES.get(key, key),
        )
        for key, value in results.test.items()
        if key != "loss"
    ]
    return ModelCardData(
        base_model=base_model,
        library_name=LIBRARY[what],
        pipeline_tag=task,
        datasets=[dataset_id] if dataset_id else None,
        license=license,
        tags=list(dict.fromkeys(tags)),
        model_name=repo_id,
        eval_results=eval_results or None,
    )


def _short_name(source: str) -> str:
    """A data source as a readable name: zoo:bbc-news -> bbc-news, /data/topics.csv -> topics."""
    name = source.split(":", 1)[1] if source.startswith("zoo:") else source.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def _summary(
    what: str, repo_id: str, results: RunRecord, config: dict[str, Any], base: str | None, license: str | None,  # noqa: A002
    speech: bool = False,
) -> str:
    labels = results.data.labels
    modality = config.get("modality", "text")
    base_text = f"[`{base}`](https://huggingface.co/{base})" if base else f"`{results.run.model}` (a local model)"
    method = display_name(results.run.method)
    kind = {
        "adapter": f"A {method} adapter (PEFT) for {base_text}",
        "merged": f"A model fine-tuned from {base_text} ({method}, merged into the weights)",
        "onnx": f"An ONNX export (fp32 and dynamic int8) of a model fine-tuned from {base_text} ({method})",
    }[what]
    what_it_does = (
        speech_card.summary_line(kind, config) if speech
        else f"{kind} that classifies {modality} into {len(labels)} labels ({', '.join(map(str, labels))}), trained "
        f"with hftl on `{config['data']['source']}`."
    )  # fmt: skip
    lines = [f"# {repo_id.split('/')[-1]}", "", what_it_does]
    if not base:
        lines += ["", f"The base model was a local folder (`{results.run.model}`); load your own copy of it."]
    if not license:
        lines += ["", "License: not stated (push with `--license` / `push.license` to state one)."]
    return "\n".join(lines)


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] = ("setting", "value")) -> str:
    out = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in rows if v is not None]
    return "\n".join(out)


def _method(results: RunRecord, config: dict[str, Any], adapter_config: dict[str, Any] | None) -> str:
    method, training, train = results.run.method, config["training"], results.train
    params = results.params
    rows: list[tuple[str, Any]] = [("method", method)]
    if method == "lora":
        lora = adapter_config or {}
        settings = config["method"]["lora"]
        rows += [
            ("LoRA rank r / alpha / dropout", f"{lora.get('r', settings['r'])} / {lora.get('lora_alpha', settings['alpha'])}"
             f" / {lora.get('lora_dropout', settings['dropout'])}"),
            ("LoRA target modules", ", ".join(sorted(lora.get("target_modules") or settings["target_modules"] or []))),
            ("trained fully (modules_to_save)", ", ".join(lora.get("modules_to_save") or []) or None),
        ]  # fmt: skip
    rows += [
        ("trainable / total parameters", f"{params['trainable']:,} / {params['total']:,} "
         f"({100 * params['trainable'] / max(params['total'], 1):.2f}%)"),
        ("epochs completed / optimizer steps", f"{train.epochs_completed} / {train.steps}"),
        ("batch size x accumulation x processes", f"{training['batch_size']} x {training['gradient_accumulation_steps']}"
         f" x {results.run.world_size}"),
        ("learning rate, schedule, warmup", f"{training['learning_rate']:g}, {training['lr_scheduler']}, "
         f"{training['warmup_ratio']:g}"),
        ("weight decay, max grad norm", f"{training['weight_decay']:g}, {training['max_grad_norm']}"),
        ("mixed precision", training["mixed_precision"]),
        ("seed", training["seed"]),
        ("model selection", f"best validation {train.metric_for_best} at step {train.best_step}"),
    ]  # fmt: skip
    modality = config.get("modality", "text")
    rows += [(f"{modality}.{key}", value) for key, value in (config.get(modality) or {}).items()]
    return "## Method\n\n" + _table(rows)


def _data(results: RunRecord, config: dict[str, Any], speech: bool = False) -> str:
    data, sizes = config["data"], results.data
    columns: list[tuple[str, Any]] = speech_card.data_rows(config) if speech else [
        ("columns", f"input `{data['input_column']}`, label `{data['label_column']}`"),
        ("labels", ", ".join(map(str, sizes.labels))),
    ]  # fmt: skip
    rows: list[tuple[str, Any]] = [
        ("source", f"`{data['source']}`" + (f" ({data['subset']})" if data.get("subset") else "")),
        *columns,
        ("rows: train / validation / test", " / ".join(str(sizes.sizes.get(s, "-")) for s in ("train", "validation", "test"))),
    ]
    for key in ("max_train_samples", "train_fraction", "shots_per_class", "max_eval_samples"):
        if data.get(key) is not None:
            rows.append((f"subsampling: {key}", data[key]))
    return "## Training data\n\n" + _table(rows)


def _metrics(results: RunRecord) -> str:
    val, test = results.eval, results.test
    keys = list(dict.fromkeys([*test, *val]))
    if not keys:
        return ""
    out = ["## Results", "", "| metric | validation (best) | test |", "|---|---|---|"]
    for key in keys:
        out.append(f"| {_METRIC_NAMES.get(key, key)} | {_num(val.get(key))} | {_num(test.get(key))} |")
    return "\n".join(out)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _export(report: dict[str, Any]) -> str:
    parity, acc = report["parity"], report["accuracy"]
    quant = report.get("quantization") or {}
    lines = [
        "## ONNX export",
        "",
        f"Checked on {report['num_samples']} test samples (task `{report['task']}`, opset {report.get('opset')}).",
        "",
        _table(
            [
                ("fp32 max abs logit diff vs PyTorch", f"{parity['fp32_max_abs_diff']:.2e} (gate {parity.get('atol')})"),
                ("int8 max abs logit diff vs PyTorch", _sci(parity.get("int8_max_abs_diff"))),
                ("int8 prediction agreement with PyTorch", _num(parity.get("int8_agreement"))),
                ("accuracy PyTorch / ORT fp32 / ORT int8", " / ".join(_num(acc.get(k)) for k in ("torch", "onnx_fp32", "onnx_int8"))),
                ("int8 quantization", f"{quant.get('mode')} {quant.get('config')}, weights {quant.get('weights_dtype')}"
                 if quant else None),
            ],
            ("check", "result"),
        ),
    ]  # fmt: skip
    latency = report.get("latency_ms") or {}
    if latency:
        lines += [
            "",
            f"Latency (median ms per call; threads: {report.get('num_threads')}):",
            "",
            "| batch | PyTorch | ORT fp32 | ORT int8 |",
            "|---|---|---|---|",
        ]
        for batch, row in latency.items():
            cells = [_ms(row.get(k)) for k in ("torch", "onnx_fp32", "onnx_int8")]
            lines.append(f"| {batch.removeprefix('batch_')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sci(value: Any) -> str:
    return "-" if value is None else f"{value:.2e}"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _usage(
    what: str,
    repo_id: str,
    results: RunRecord,
    config: dict[str, Any],
    base: str | None,
    adapter_config: dict[str, Any] | None,
    revision: str | None,
) -> str:
    modality = get_modality(config.get("modality", "text"))
    auto, processor_class = modality.auto_model_name, modality.processor_class_name
    rev = f', revision="{revision}"' if revision and revision != "main" else ""
    labels = [str(x) for x in results.data.labels]
    example = modality.card_example(config)
    if what == "adapter" and base:  # the adapter names a Hub base: PEFT's Auto classes build it, as PEFT users expect
        code = _auto_peft_usage(modality, repo_id, rev, labels, example, modality.card_base_kwargs(config))
        after = (
            "`num_labels` and the label maps build the base with this adapter's head size; without them the base keeps "
            "its own label count and the saved head does not fit (a size mismatch). "
            f"With hftl, name it as the model to keep training or to export it: `model.source={repo_id}`."
        )
    elif what == "adapter":
        base_ref = (adapter_config or {}).get("base_model_name_or_path") or results.run.model
        note = "  # the base was a local folder: point this at your copy"
        code = [
            "import torch",
            "from peft import PeftModel",
            f"from transformers import {auto}, {processor_class}",
            "",
            f"labels = {labels!r}",
            f"base = {auto}.from_pretrained(",
            f'    "{base_ref}",{note}',
            "    num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},",
            "    ignore_mismatched_sizes=True,  # the adapter brings the trained head",
            ")",
            f'model = PeftModel.from_pretrained(base, "{repo_id}"{rev}).eval()',
            f'processor = {processor_class}.from_pretrained("{repo_id}"{rev})',
            *example,
            "with torch.no_grad():",
            "    print(labels[int(model(**inputs).logits.argmax(-1)[0])])",
        ]
        after = f"With hftl, name it as the model to keep training or to export it: `model.source={repo_id}`."
    elif what == "merged":
        code = [
            "import torch",
            f"from transformers import {auto}, {processor_class}",
            "",
            f'model = {auto}.from_pretrained("{repo_id}"{rev}).eval()',
            f'processor = {processor_class}.from_pretrained("{repo_id}"{rev})',
            *example,
            "with torch.no_grad():",
            "    print(model.config.id2label[int(model(**inputs).logits.argmax(-1)[0])])",
        ]
        after = f"With hftl: `model.source={repo_id}`."
    else:
        inputs, takes = modality.card_onnx_inputs(config)
        code = [
            "from huggingface_hub import snapshot_download",
            "from hftl.deploy.export import predict",
            "",
            f'folder = snapshot_download("{repo_id}"{rev})',
            f"print(predict(folder, {inputs}))  # the export's measured default; quantized=True: int8; precision='fp32': fp32",
        ]
        after = (
            f"`model.onnx` (fp32) and `model_quantized.onnx` (int8) take {takes}; "
            "`hftl predict FOLDER INPUT...` does the same from the command line." + _serve_usage(modality)
        )
    return "## Usage\n\n```python\n" + "\n".join(code) + "\n```\n\n" + after


def _serve_usage(modality: Modality) -> str:
    if modality.sample_file is None:  # JSON inputs (text)
        call = """curl -s localhost:8080/predict -H 'content-type: application/json' -d '{"inputs": ["A text to classify."]}'"""
    else:
        call = f"curl -s localhost:8080/predict -F inputs=@{modality.sample_file}"
    return (
        "\n\nServe it over HTTP (dynamic batching, `/health`, `/ready`, Prometheus `/metrics`, a page to try it at `/`):"
        "\n\n```bash\nhftl serve FOLDER --quantized --port 8080  # --workers K processes, or --ray --workers K replicas"
        f"\n{call}\n```"
    )


def _auto_peft_usage(
    modality: Modality, repo_id: str, rev: str, labels: list[str], example: list[str], extra: list[str]
) -> list[str]:
    """AutoPeftModel* loads the base named in adapter_config.json, sized by num_labels, then the adapter and its head."""
    peft_class, processor_class = modality.auto_peft_model_name, modality.processor_class_name
    return [
        "import torch",
        f"from peft import {peft_class}",
        f"from transformers import {processor_class}",
        "",
        f"labels = {labels!r}",
        f"model = {peft_class}.from_pretrained(",
        f'    "{repo_id}"{rev},',
        "    num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},",
        "    ignore_mismatched_sizes=True,  # a base saved with another head: the adapter brings the trained one",
        *extra,
        ").eval()",
        f'processor = {processor_class}.from_pretrained("{repo_id}"{rev})',
        *example,
        "with torch.no_grad():",
        "    print(model.config.id2label[int(model(**inputs).logits.argmax(-1)[0])])",
    ]


def _versions(results: RunRecord, export_report: dict[str, Any] | None) -> str:
    versions = dict(results.run.versions)
    for name, version in ((export_report or {}).get("versions") or {}).items():
        versions.setdefault(name, version)
    if not versions:
        return ""
    return "## Framework versions\n\n" + "\n".join(f"- {k} {v}" for k, v in versions.items() if v)
