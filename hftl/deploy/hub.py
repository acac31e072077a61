"""Push a finished run to the Hugging Face Hub: its adapter, merged model or ONNX export, with a model card.

    adapter  RUN/adapter (adapter_config.json + adapter_model.safetensors) + the tokenizer/processor files
    merged   RUN/model (config.json + model.safetensors + tokenizer/processor), ready for from_pretrained
    onnx     RUN/onnx (model.onnx, model_quantized.onnx, export_report.json, hftl_config.yaml, tokenizer)

Each push is one commit that also holds README.md (the card, ``hftl.deploy.model_card``) and, for adapter and merged,
the run's config as ``hftl_config.yaml``. The token comes from ``HF_TOKEN`` or the huggingface_hub login; it is
handed to the client only and never written, logged or put in a message. Nothing under RUN_DIR is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hftl import zoo
from hftl.config import PushConfig, load_config
from hftl.deploy.model_card import render_card
from hftl.deploy.speech_runtime import DECODER_FILE, ENCODER_FILE, is_speech_export
from hftl.errors import HubError
from hftl.modalities import get_modality
from hftl.run import rundir
from hftl.run.methods import all_methods
from hftl.run.models import find_adapter
from hftl.run.record import RunRecord, read_record, results_path

logger = logging.getLogger("hftl")

FOLDERS = {"adapter": "adapter", "merged": "model", "onnx": "onnx"}
REQUIRED = {
    "adapter": ("adapter_config.json", "adapter_model.safetensors"),
    "merged": ("config.json",),
    "onnx": ("model.onnx", "hftl_config.yaml"),
}
CARD = "README.md"
RUN_CONFIG_IN_REPO = "hftl_config.yaml"
# Weights and model config stay out of an adapter repo: a repo with config.json would read as a full model.
_NOT_PROCESSOR = ("config.json", "generation_config.json", CARD)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json", ".pt", ".pth")





@dataclass
class PushResult:
    repo_id: str
    what: str
    revision: str
    repo_url: str
    commit_url: str
    commit_oid: str
    files: list[str]  # paths in the repo, as committed


def push_run(run_dir: str | Path, push: PushConfig) -> PushResult:
    """Push RUN_DIR's adapter, merged model or ONNX export (``push.what``) to ``push.repo_id`` with a model card.

    Raises:
        HubError: the run lacks what is asked for; offline mode; no token; the Hub is unreachable or refuses the
            write. Nothing local is changed in any case.
    """
    run_dir = Path(run_dir)
    if not push.repo_id:
        raise HubError("push.repo_id is not set (OWNER/NAME)")
    results, config = _finished_run(run_dir)
    files, card = _prepare(run_dir, push, results, config)
    _check_online()
    token = _token()
    revision = push.revision or "main"
    message = push.commit_message or _default_message(push.what, results)
    size_mb = sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in files.values()) / 2**20
    logger.info("pushing %s of %s to %s@%s: %d files, %.1f MB", push.what, run_dir, push.repo_id, revision, len(files), size_mb)
    operations = _operations(files, card)
    with _hub_errors(push.repo_id, token):
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_url = api.create_repo(push.repo_id, private=push.private, exist_ok=True, repo_type="model")
        if revision != "main":
            api.create_branch(push.repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(push.repo_id, operations, commit_message=message, revision=revision)
    repo_url = str(repo_url) + ("" if revision == "main" else f"/tree/{revision}")
    logger.info("pushed %s to %s (commit %s)", push.what, repo_url, info.oid[:12])
    return PushResult(push.repo_id, push.what, revision, repo_url, info.commit_url, info.oid, sorted([*files, CARD]))


def _finished_run(run_dir: Path) -> tuple[RunRecord, dict[str, Any]]:
    results, config_path = results_path(run_dir), run_dir / rundir.CONFIG
    if not results.is_file() or not config_path.is_file():
        raise HubError(f"{run_dir} is not a finished run (need {results.name} and {config_path.name})")
    return read_record(run_dir), yaml.safe_load(config_path.read_text())


def _prepare(
    run_dir: Path, push: PushConfig, results: RunRecord, config: dict[str, Any]
) -> tuple[dict[str, Path | bytes], str]:
    """The files to commit (path in repo -> local file, or bytes when rewritten) and the card's text."""
    folder = run_dir / FOLDERS[push.what]
    required = REQUIRED[push.what]
    if push.what == "onnx" and is_speech_export(folder):  # an encoder-decoder export: two graphs, no model.onnx
        required = (ENCODER_FILE, DECODER_FILE, "hftl_config.yaml")
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        hint = {
            "adapter": f"method={'/'.join(m.name for m in all_methods() if m.saves_adapter)} runs have one; "
            "use --what merged otherwise",
            "merged": "the run was saved with output.save_merged=false",
            "onnx": f"run `hftl export {run_dir}` first",
        }[push.what]
        raise HubError(f"{folder} lacks {', '.join(missing)}: nothing to push as {push.what} ({hint})")
    files: dict[str, Path | bytes] = {_repo_path(p, folder): p for p in _files_under(folder) if p.name != CARD}
    adapter_config = _read_json(run_dir / "adapter" / "adapter_config.json")
    recorded_base = (adapter_config or {}).get("base_model_name_or_path") or config["model"]["source"]
    base = portable_base(recorded_base)
    if push.what == "adapter":
        files.update(_processor_files(run_dir))
        if base and base != recorded_base:
            # The run recorded where the base was on this machine; the pushed adapter names it as anyone can load it.
            files["adapter_config.json"] = (json.dumps({**adapter_config, "base_model_name_or_path": base},
                                                       indent=2, sort_keys=True) + "\n").encode()  # fmt: skip
    if push.what != "onnx":
        files[RUN_CONFIG_IN_REPO] = run_dir / rundir.CONFIG
    card = render_card(
        what=push.what,
        repo_id=push.repo_id,
        results=results,
        config=config,
        export_report=_read_json(run_dir / "onnx" / rundir.EXPORT_REPORT),
        adapter_config=adapter_config,
        base_model=base,
        base_for_code=base or recorded_base,
        dataset_id=portable_dataset(config["data"]["source"]),
        revision=push.revision,
        license=push.license,
    )
    return files, card


def _files_under(folder: Path) -> list[Path]:
    # Hidden files are work files (".tmp-...") or tool state, never artefacts.
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _repo_path(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _processor_files(run_dir: Path) -> dict[str, Path | bytes]:
    """Tokenizer / processor files for the adapter repo: from RUN/model, else saved from where the run loaded them."""
    model_dir = run_dir / "model"
    if model_dir.is_dir():
        found = {
            _repo_path(p, model_dir): p
            for p in _files_under(model_dir)
            if p.name not in _NOT_PROCESSOR and not p.name.endswith(_WEIGHT_SUFFIXES)
        }
        if found:
            return found

    cfg = load_config(run_dir / rundir.CONFIG)
    adapter = find_adapter(str(run_dir / "adapter"))
    if adapter is None:
        return {}
    processor = get_modality(cfg.modality).load_processor(adapter.processor_source, cfg)
    with tempfile.TemporaryDirectory(prefix="hftl-processor-") as tmp:
        processor.save_pretrained(tmp)
        return {_repo_path(p, Path(tmp)): p.read_bytes() for p in _files_under(Path(tmp))}


def portable_base(name: str) -> str | None:
    """The Hub id a model reference stands for, or None for a local folder that has none.

    ``zoo:NAME`` and the zoo's prepared folder (what a run records as the adapter's base) map to the entry's Hub id.
    """
    if name.startswith("zoo:"):
        try:
            return zoo.get(name[len("zoo:") :]).hub_id
        except zoo.ZooError:
            return None
    path = Path(name).expanduser()
    if path.exists():
        for entry in zoo.entries():
            if entry.hub_id and zoo.entry_path(entry.name).resolve() == path.resolve():
                return entry.hub_id
        return None
    return name if _is_repo_id(name) else None


def portable_dataset(source: str) -> str | None:
    """The Hub dataset id of a data source, or None (a local file, or a zoo entry without one)."""
    if source.startswith("zoo:"):
        try:
            return zoo.get(source[len("zoo:") :]).hub_id
        except zoo.ZooError:
            return None
    return None if Path(source).expanduser().exists() else (source if _is_repo_id(source) else None)


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "/", "~")):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _default_message(what: str, results: RunRecord) -> str:
    test = results.test
    score = f", test accuracy {test['accuracy']:.4f}" if "accuracy" in test else ""
    score += f", test WER {test['wer']:.4f}" if "wer" in test else ""
    return f"hftl: {what} of run {results.run.name} ({results.run.method}{score})"


def _check_online() -> None:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    if constants.HF_HUB_OFFLINE or flag:
        raise HubError("offline mode is on (HF_HUB_OFFLINE=1): pushing needs the Hub; unset it to push")


def _token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (the token needs write access)")
    return token


def _operations(files: dict[str, Path | bytes], card: str) -> list[Any]:
    from huggingface_hub import CommitOperationAdd

    # Local paths, not bytes: the client streams them, hashes them and sends large ones through its LFS route.
    ops = [CommitOperationAdd(path_in_repo=k, path_or_fileobj=v if isinstance(v, bytes) else str(v)) for k, v in files.items()]
    ops.append(CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card.encode()))
    return ops


def _redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


@contextlib.contextmanager
def _hub_errors(repo_id: str, token: str) -> Iterator[None]:
    """Turn the client's errors into HubErrors that say what to do (and never carry the token)."""
    import requests
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled as err:
        raise HubError(_redact(f"offline mode is on: {err}", token)) from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        detail = err.server_message or str(err).splitlines()[0]
        if status == 401:
            message = f"the Hub rejected the token (HTTP 401) for {repo_id}: {detail}"
        elif status == 403:
            message = f"the Hub refused to write to {repo_id} (HTTP 403): {detail}; the token needs write access there"
        else:
            message = f"pushing to {repo_id} failed (HTTP {status}): {detail}"
        raise HubError(_redact(message, token)) from None
    except requests.RequestException as err:  # connection refused, DNS, timeout
        raise HubError(_redact(f"could not reach the Hub at {constants.ENDPOINT}: {err}", token)) from None
    except (ValueError, RuntimeError) as err:  # invalid card metadata, LFS batch errors, failed large-file upload
        cause = f": {err.__cause__}" if err.__cause__ else ""
        raise HubError(_redact(f"the Hub did not accept the upload to {repo_id}: {err}{cause}", token)) from None
