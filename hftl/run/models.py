"""Build the classifier from a model source and apply the transfer method to it.

What each method then does to the built model is in hftl/run/methods.py (the method registry).

A source may also be a PEFT adapter (a local folder or Hub repo with ``adapter_config.json`` and no
``config.json``): its config names the base, which is loaded as a classifier with the run's labels, and
``PeftModel.from_pretrained`` puts the adapter on it. With method=lora training continues that adapter (its own
rank and targets; ``method.lora`` is not used); with full / linear_probe / lp_ft the adapter is merged first and the
method applies to the merged model; scratch only takes the base's architecture. The adapter's saved head must match the
run's label count.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hftl import zoo
from hftl.config import Config
from hftl.errors import ConfigError, ModelError
from hftl.modalities import Modality
from hftl.run.backbone import backbone_config, candidate_record, seeded_init
from hftl.run.methods import get_method
from hftl.tasks import get_task
from hftl.zoo.candidates import parse_candidate

logger = logging.getLogger("hftl")

# Names transformers gives to classification heads; used when the loading info cannot tell the head apart.
_KNOWN_HEADS = ("classifier", "pre_classifier", "score", "projector")
ADAPTER_CONFIG = "adapter_config.json"
# Files that mark a saved tokenizer / image processor / feature extractor.
_PROCESSOR_FILES = ("tokenizer_config.json", "preprocessor_config.json")
# Weight files that are pickles (torch.save): loading one can run arbitrary code.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_PICKLE_HINT = (
    "Convert the weights to safetensors (save_pretrained(..., safe_serialization=True)), "
    "or set model.allow_pickle=true if you trust where they come from."
)


@dataclass
class BuiltModel:
    model: torch.nn.Module
    source: str  # resolved local folder or Hub id the processor loads from
    head_modules: list[str]  # top-level modules newly initialised for this task
    revision: str | None = None  # Hub revision of `source`
    adapter: str | None = None  # the adapter (folder or Hub id) the model was built from, if any
    candidate: dict[str, Any] | None = None  # which candidate backbone: name, layers kept, init (the run record's)


@dataclass
class AdapterSource:
    """A PEFT adapter named as a model source."""

    ref: str  # local folder or Hub repo id
    revision: str | None  # Hub revision of ref
    config: dict[str, Any]  # adapter_config.json
    processor_source: str  # where the tokenizer / processor comes from: beside the adapter, else the base
    processor_revision: str | None

    @property
    def base(self) -> str:
        return self.config["base_model_name_or_path"]

    @property
    def base_revision(self) -> str | None:
        return self.config.get("revision")


def refuse_pickled_weights(folder: str | Path, what: str, allow_pickle: bool) -> None:
    """Raise when a local folder holds its weights only as pickles, unless model.allow_pickle is set.

    Raises:
        ModelError: names the folder and the pickled files, and says what to do.
    """
    folder = Path(folder)
    if allow_pickle or not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickled:
        raise ModelError(
            f"{what}: {folder} holds only pickled weights ({', '.join(pickled)}); unpickling can run code. {_PICKLE_HINT}"
        )


def _load_error(what: str, err: Exception, allow_pickle: bool) -> ModelError:
    hint = f" {_PICKLE_HINT}" if not allow_pickle and "safetensors" in str(err) else ""
    return ModelError(f"{what}: {err}{hint}")


def resolve_model_source(source: str) -> str:
    """zoo:NAME -> its prepared folder; an existing path -> itself; anything else is taken as a Hub id.

    A candidate's suffixes (``zoo:NAME@L3@random``, hftl/zoo/candidates.py) name the same folder as the bare source.
    """
    source = parse_candidate(source).source
    zoo_path = zoo.resolve(source)
    if zoo_path is not None:
        return str(zoo_path)
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(
                f"model.source: {path} has no config.json; name a transformers model folder "
                "(save_pretrained output) or a PEFT adapter folder (adapter_config.json)"
            )
        return str(path)
    if source.startswith((".", "/", "~")):
        raise ModelError(
            f"model.source: local path {source} does not exist; check the path, or name zoo:NAME (hftl zoo list) or a Hub id"
        )
    return source


def _hub_file(repo_id: str, filename: str, revision: str | None) -> str | None:
    """Local path of repo_id/filename fetched through the Hub client (cached), or None if it cannot be had."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        return hf_hub_download(repo_id, filename, revision=revision)
    except HFValidationError:
        return None
    except OSError:  # missing file/repo/revision, offline, unreachable: all mean "not an adapter we can use here"
        return None


def find_adapter(source: str, revision: str | None = None) -> AdapterSource | None:
    """The adapter that source names (local folder or Hub repo holding adapter_config.json), or None.

    A Hub id that is not an adapter (or cannot be reached) gives None: the ordinary model path then reports it.

    Raises:
        ModelError: the adapter's config names no base model.
    """
    if source.startswith("zoo:"):
        return None
    path = Path(source).expanduser()
    if path.exists():
        if not (path / ADAPTER_CONFIG).is_file() or (path / "config.json").is_file():
            return None
        config_file, revision = str(path / ADAPTER_CONFIG), None
        has_processor = any((path / name).is_file() for name in _PROCESSOR_FILES)
        ref = str(path)
    elif source.startswith((".", "/", "~")):
        return None
    else:
        config_file = _hub_file(source, ADAPTER_CONFIG, revision)
        if config_file is None:
            return None
        has_processor = any(_hub_file(source, name, revision) for name in _PROCESSOR_FILES)
        ref = source
    config = json.loads(Path(config_file).read_text())
    if not config.get("base_model_name_or_path"):
        raise ModelError(f"model.source={source}: {ADAPTER_CONFIG} names no base_model_name_or_path")
    base = config["base_model_name_or_path"]
    if has_processor:
        return AdapterSource(ref, revision, config, ref, revision)
    return AdapterSource(ref, revision, config, _resolve_base(ref, base), config.get("revision"))


def _resolve_base(adapter_ref: str, base: str) -> str:
    # A pushed adapter names its base by Hub id; a prepared zoo copy of that model serves it without the Hub.
    for entry in zoo.entries():
        if entry.hub_id == base and entry.kind == "model" and zoo.is_prepared(entry.name):
            logger.info("adapter %s: base %s from the prepared zoo entry %s", adapter_ref, base, entry.name)
            return str(zoo.entry_path(entry.name))
    try:
        return resolve_model_source(base)
    except ModelError as err:
        raise ModelError(f"adapter {adapter_ref} names base model {base!r}, which cannot be used here: {err}") from err


def load_adapter_classifier(
    adapter: AdapterSource, modality: Modality, label_names: list[str], *, trainable: bool, trust_remote_code: bool,
    cfg: Config | None = None,
) -> torch.nn.Module:
    """The adapter's base as a classifier for label_names with the adapter on it (a PeftModel).

    Raises:
        ModelError: the base cannot be loaded, or the adapter does not fit it (e.g. its head has another label count).
    """
    from peft import PeftModel

    allow_pickle = cfg is not None and cfg.model.allow_pickle
    base_source = _resolve_base(adapter.ref, adapter.base)
    refuse_pickled_weights(base_source, f"adapter {adapter.ref}: base model", allow_pickle)
    _refuse_pickled_adapter(adapter, allow_pickle)
    auto = modality.auto_model()
    try:
        base = auto.from_pretrained(
            base_source,
            revision=adapter.base_revision,
            trust_remote_code=trust_remote_code,
            ignore_mismatched_sizes=True,
            use_safetensors=None if allow_pickle else True,
            **_label_kwargs(label_names),
            **_attention_kwargs(cfg),
        )
    except (OSError, ValueError) as err:
        what = f"adapter {adapter.ref}: could not load its base {adapter.base} as a {auto.__name__}"
        raise _load_error(what, err, allow_pickle) from err
    if cfg is not None:  # fit the base to the run's inputs before the adapter goes on (e.g. Whisper's short encoder)
        modality.adapt_model(base, cfg)
    if not adapter.config.get("modules_to_save") and adapter.config.get("task_type") != "SEQ_CLS":
        logger.warning("adapter %s saves no classification head: the head starts from random weights", adapter.ref)
    try:
        return PeftModel.from_pretrained(base, adapter.ref, revision=adapter.revision, is_trainable=trainable)
    except (OSError, RuntimeError, ValueError) as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[:2])  # torch lists every tensor
        raise ModelError(
            f"adapter {adapter.ref} does not fit its base {adapter.base} with {len(label_names)} labels: {detail} ... "
            "An adapter loads only on the base it was trained on (same architecture, sizes and module names) and "
            "its saved head must match the run's label count: point base_model_name_or_path in its "
            f"{ADAPTER_CONFIG} at that base, or train a new adapter."
        ) from err


def merge_adapter(adapter: AdapterSource, modality: Modality, label_names: list[str], cfg: Config) -> torch.nn.Module:
    """The adapter's base with the adapter merged into its weights (``merge_and_unload``): a plain transformers model,
    what ``model/`` holds and what optimum exports."""
    model = load_adapter_classifier(
        adapter, modality, label_names, trainable=False, trust_remote_code=cfg.model.trust_remote_code, cfg=cfg
    )
    return model.merge_and_unload()


def _refuse_pickled_adapter(adapter: AdapterSource, allow_pickle: bool) -> None:
    path = Path(adapter.ref).expanduser()
    if path.is_dir():
        refuse_pickled_weights(path, f"adapter {adapter.ref}", allow_pickle)
    elif not allow_pickle and _hub_file(adapter.ref, "adapter_model.safetensors", adapter.revision) is None:
        raise ModelError(f"adapter {adapter.ref} has no adapter_model.safetensors. {_PICKLE_HINT}")


def _label_kwargs(label_names: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }


def _build_from_adapter(cfg: Config, modality: Modality, label_names: list[str], adapter: AdapterSource) -> BuiltModel:
    method = get_method(cfg.method.name)
    extra = {"revision": adapter.processor_revision, "adapter": adapter.ref}
    if not method.pretrained:
        from transformers import AutoConfig

        base = _resolve_base(adapter.ref, adapter.base)
        config = AutoConfig.from_pretrained(
            base, revision=adapter.base_revision, trust_remote_code=cfg.model.trust_remote_code, **_label_kwargs(label_names)
        )
        model = modality.auto_model().from_config(config, trust_remote_code=cfg.model.trust_remote_code, **_attention_kwargs(cfg))
        modality.adapt_model(model, cfg)
        return BuiltModel(model, adapter.processor_source, _head_modules(model, []), **extra)
    model = load_adapter_classifier(
        adapter, modality, label_names, trainable=method.saves_adapter, trust_remote_code=cfg.model.trust_remote_code, cfg=cfg
    )
    if method.saves_adapter:
        logger.info("continuing adapter %s (its own rank and targets; method.lora settings are not used)", adapter.ref)
        heads = list(model.peft_config["default"].modules_to_save or [])
        return BuiltModel(model, adapter.processor_source, heads, **extra)
    merged = model.merge_and_unload()
    return BuiltModel(merged, adapter.processor_source, _head_modules(merged, []), **extra)


def load_processor(cfg: Config, modality: Modality, built: BuiltModel) -> Any:
    """The processor saved beside the built model (for an adapter: beside it, else beside its base)."""
    if built.revision != cfg.model.revision:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, revision=built.revision))
    return get_task(cfg.task).load_processor(modality, built.source, cfg)


def _head_modules(model: torch.nn.Module, missing_keys: list[str]) -> list[str]:
    """Top-level submodules holding newly initialised weights: the task head."""
    top = {name for name, _ in model.named_children()}
    heads = sorted({key.split(".")[0] for key in missing_keys if key.split(".")[0] in top})
    if not heads:  # a checkpoint that already carries a head (e.g. a fine-tuned model)
        heads = [name for name in _KNOWN_HEADS if name in top]
    if not heads:
        raise ModelError(f"cannot tell the classification head of {type(model).__name__}; top modules: {sorted(top)}")
    return heads


def _attention_kwargs(cfg: Config | None) -> dict[str, str]:
    """model.attn_implementation for from_pretrained / from_config; nothing (transformers' default) when unset."""
    chosen = cfg.model.attn_implementation if cfg is not None else None
    return {"attn_implementation": chosen} if chosen else {}


def set_batch_norm_momentum(model: torch.nn.Module, momentum: float | None) -> int:
    """model.batch_norm_momentum on every batch-norm layer (null: leave the checkpoint's); how many layers it set."""
    if momentum is None:
        return 0
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def build_model(cfg: Config, modality: Modality, label_names: list[str]) -> BuiltModel:
    """The pretrained backbone with a fresh head for label_names (random weights for method=scratch).

    A PEFT adapter as model.source is loaded on its base (see the module docstring for what each method does then).
    """
    task = get_task(cfg.task)
    adapter = find_adapter(cfg.model.source, cfg.model.revision)
    if adapter is not None:
        if not task.new_head:
            raise ModelError(f"model.source={cfg.model.source} is a PEFT adapter: task={task.name} starts from a full "
                             "model folder (a run's model/ holds the merged one)")  # fmt: skip
        if cfg.model.keep_layers is not None or cfg.model.init != "pretrained":
            raise ModelError(
                f"model.source={cfg.model.source} is an adapter: model.keep_layers / model.init (@L, @random) "
                "apply to a base model, not to an adapter trained on one"
            )
        return _build_from_adapter(cfg, modality, label_names, adapter)
    source = resolve_model_source(cfg.model.source)
    auto = task.auto_model(modality)
    config = backbone_config(source, cfg, **task.label_kwargs(label_names))
    if not get_method(cfg.method.name).pretrained or cfg.model.init == "random":
        with seeded_init(cfg.training.seed):
            model = auto.from_config(config, trust_remote_code=cfg.model.trust_remote_code, **_attention_kwargs(cfg))
        modality.adapt_model(model, cfg)
        set_batch_norm_momentum(model, cfg.model.batch_norm_momentum)
        heads = _head_modules(model, []) if task.new_head else []
        return BuiltModel(model, source, heads, cfg.model.revision, candidate=candidate_record(cfg, config))
    refuse_pickled_weights(source, f"model.source={cfg.model.source}", cfg.model.allow_pickle)
    try:
        model, info = auto.from_pretrained(
            source,
            config=config,  # labels and depth (model.keep_layers: only the first k layers are built and filled)
            revision=cfg.model.revision,
            trust_remote_code=cfg.model.trust_remote_code,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            use_safetensors=None if cfg.model.allow_pickle else True,  # None: safetensors first, else the .bin
            **_attention_kwargs(cfg),
        )
    except (OSError, ValueError) as err:
        what = f"model.source={cfg.model.source}: could not load a {auto.__name__}"
        raise _load_error(what, err, cfg.model.allow_pickle) from err
    modality.adapt_model(model, cfg)
    set_batch_norm_momentum(model, cfg.model.batch_norm_momentum)
    missing = list(info["missing_keys"]) + [k for k, *_ in info.get("mismatched_keys", [])]
    # a speech recogniser's pretrained model is the whole task model (its decoder writes the words): no new head
    heads = _head_modules(model, missing) if task.new_head else []
    return BuiltModel(model, source, heads, cfg.model.revision, candidate=candidate_record(cfg, config))


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass (training.gradient_checkpointing), in place.

    Non-reentrant checkpointing: gradients flow even when the inputs need none (frozen embeddings under LoRA or a
    linear probe), so no ``enable_input_require_grads`` hook is needed, and it works under DDP and FSDP.

    Raises:
        ConfigError: the architecture does not support it.
    """
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"training.gradient_checkpointing: {type(base).__name__} does not support it; set it to false"
        )
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def is_gradient_checkpointing(model: torch.nn.Module) -> bool:
    """Whether the model (under any PEFT wrapper) really recomputes activations: what results.json records."""
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return bool(getattr(base, "is_gradient_checkpointing", False))


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and total parameter counts (each tensor once, however it is shared)."""
    seen: dict[int, Any] = {}
    for param in model.parameters():
        seen[id(param)] = param
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return {"trainable": int(trainable), "total": int(total)}
