"""The run config's schema: typed dataclasses, each field with its one-line help.

The modalities' own sections (``text:``, ``vision:``, ``audio:``, ...) are not listed here: each modality declares its
dataclass (``Modality.config_section``) and the config asks the modality table (``modality_sections``) whenever it
builds, checks or writes a config, so a modality registered later brings its section without this file changing.

What checks one field or section alone lives in its ``__post_init__``; reading YAML and overrides: loader.py.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hftl.errors import ConfigError
from hftl.modalities import get_modality, registered_modalities
from hftl.zoo.candidates import INITS, Candidate, Init, parse_candidate


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field carrying its one-line help string in the metadata."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class ModelConfig:
    source: str = _help("zoo:NAME, a Hugging Face Hub id, or a local folder", "zoo:minilm-l6")
    revision: str | None = _help("Hub revision (branch, tag or commit) when source is a Hub id", None)
    trust_remote_code: bool = _help("allow custom modelling code from the Hub (off unless you trust it)", False)
    allow_pickle: bool = _help(
        "allow pickled weights (pytorch_model.bin, adapter_model.bin): unpickling can run code; off = safetensors only",
        False,
    )
    keep_layers: int | None = _help(
        "keep only the backbone's first k transformer layers (a depth-truncated candidate; source suffix @Lk); null: all",
        None,
    )
    init: Init = _help(
        "pretrained: the source's weights; random: the same architecture with random weights (seeded by "
        "training.seed), under any method (source suffix @random; method=scratch is full training of it)",
        "pretrained",
    )
    attn_implementation: Literal["sdpa", "eager"] | None = _help(
        "attention kernel: null = transformers' default (sdpa); eager (the DINOv2 and Whisper LoRA recipes' choice) "
        "computes the same function, kept sdpa's test accuracy over 3 seeds and trained those recipes 1.2-2x faster on "
        "an AVX512-BF16 CPU, MiniLM not (BENCHMARKS.md, 'Eager vs SDPA attention')",
        None,
    )
    batch_norm_momentum: float | None = _help(
        "weight of each training batch in a batch-norm layer's running statistics (PyTorch's momentum) while it "
        "trains; null: the checkpoint's (EfficientNet-Lite: 0.01, TensorFlow's 0.99 decay, after which 30 fine-tuning "
        "steps still evaluate with 74% ImageNet statistics: a short fine-tune wants ~0.1); no effect without batch norm",
        None,
    )

    def __post_init__(self) -> None:
        if self.batch_norm_momentum is not None and not 0 < self.batch_norm_momentum <= 1:
            raise ConfigError(f"model.batch_norm_momentum must be in (0, 1] or null, got {self.batch_norm_momentum}")
        # zoo:NAME@L3@random names a candidate backbone in one string (compare specs list them): split it into keys.
        candidate = parse_candidate(self.source)
        if candidate.source != self.source:
            if self.keep_layers is not None and candidate.keep_layers not in (None, self.keep_layers):
                raise ConfigError(
                    f"model.source={self.source} says keep_layers={candidate.keep_layers} but model.keep_layers={self.keep_layers}"
                )
            self.source = candidate.source
            self.keep_layers = candidate.keep_layers if candidate.keep_layers is not None else self.keep_layers
            if candidate.init == "random":
                self.init = "random"
        if self.keep_layers is not None and self.keep_layers < 1:
            raise ConfigError(f"model.keep_layers must be >= 1 or null, got {self.keep_layers}")
        if self.init not in INITS:
            raise ConfigError(f"model.init must be one of {list(INITS)}, got {self.init!r}")

    @property
    def candidate(self) -> Candidate:
        """The backbone as a candidate (its name, e.g. minilm-l6@L3, is what run records and reports show)."""
        return Candidate(self.source, self.keep_layers, self.init)


@dataclass
class DataConfig:
    source: str = _help("zoo:NAME, a Hub dataset id, a local file (csv/json/jsonl/parquet) or folder", "zoo:bbc-news")
    subset: str | None = _help("Hub dataset configuration name", None)
    input_column: str = _help("column holding the input (text, image or audio path)", "text")
    label_column: str = _help("column holding the class label (task=speech_recognition: the transcript)", "label")
    labels: list[str] | None = _help("class names in label-id order; default: from the data", None)
    train_split: str = _help("split to train on", "train")
    validation_split: str | None = _help("split for model selection; carved from train when absent", "validation")
    test_split: str | None = _help("held-out split; carved from train when absent", "test")
    validation_fraction: float = _help("share of train carved out as validation when the data has none", 0.1)
    test_fraction: float = _help("share of train carved out as test when the data has none", 0.2)
    split_seed: int = _help("seed of carved splits and subsampling (independent of the training seed)", 42)
    subset_seed: int | None = _help(
        "seed of the training subset draw (shots_per_class / max_train_samples / train_fraction); a study sets it per "
        "seed so each seed draws its own subset; null: split_seed", None
    )
    max_train_samples: int | None = _help("stratified subsample of the train split to this many rows", None)
    train_fraction: float | None = _help("stratified subsample of the train split to this share", None)
    shots_per_class: int | None = _help("few-shot: this many training rows per class", None)
    max_eval_samples: int | None = _help("stratified cap on validation and test rows (quick runs)", None)
    max_test_samples: int | None = _help("stratified cap on test rows alone (overrides max_eval_samples for test)", None)
    on_bad_sample: Literal["error", "skip"] = _help(
        "a row that cannot be used (unreadable or empty file, NaN audio, empty text, unknown or missing label): "
        "error stops naming it; skip leaves it out and lists it in RUN/skipped_samples.json",
        "error",
    )
    encoding: str = _help("text encoding of local CSV / TSV / JSON files, e.g. latin-1 or cp1252", "utf-8")

    def __post_init__(self) -> None:
        chosen = [k for k in ("max_train_samples", "train_fraction", "shots_per_class") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ConfigError(f"data: set at most one of max_train_samples, train_fraction, shots_per_class (got {chosen})")
        for key in ("validation_fraction", "test_fraction"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"data.{key} must be in (0, 1), got {getattr(self, key)}")
        if self.train_fraction is not None and not 0.0 < self.train_fraction <= 1.0:
            raise ConfigError(f"data.train_fraction must be in (0, 1], got {self.train_fraction}")
        for key in ("max_train_samples", "shots_per_class", "max_eval_samples", "max_test_samples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"data.{key} must be >= 1, got {value}")


@dataclass
class LoraSettings:
    r: int = _help("rank of the low-rank update", 16)
    alpha: int = _help("scaling numerator (update scale = alpha / r)", 32)
    dropout: float = _help("dropout on the LoRA input", 0.1)
    target_modules: list[str] | None = _help("module names to adapt; default per architecture", None)

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"method.lora.r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"method.lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class LpFtSettings:
    """LP-FT (Kumar et al. 2022): a linear probe first, so full fine-tuning starts from a trained head."""

    probe_epochs: int = _help("epochs of the probe phase (frozen backbone, head only)", 5)
    probe_max_steps: int | None = _help("stop the probe phase after this many steps (overrides probe_epochs)", None)
    probe_learning_rate: float = _help(
        "learning rate of the probe phase (a probe wants a large step); the fine-tune phase uses training.learning_rate",
        1e-2,
    )

    def __post_init__(self) -> None:
        if self.probe_epochs < 1:
            raise ConfigError(f"method.lp_ft.probe_epochs must be >= 1, got {self.probe_epochs}")
        if self.probe_max_steps is not None and self.probe_max_steps < 1:
            raise ConfigError(f"method.lp_ft.probe_max_steps must be >= 1, got {self.probe_max_steps}")
        if self.probe_learning_rate <= 0:
            raise ConfigError(f"method.lp_ft.probe_learning_rate must be > 0, got {self.probe_learning_rate}")


@dataclass
class ProbeSettings:
    """How a linear probe (method=linear_probe, and LP-FT's probe phase) fits its head on the frozen features."""

    solver: Literal["logistic", "sgd"] = _help(
        "logistic: an L2-regularised logistic regression (sklearn, L-BFGS) on cached features, its strength swept on "
        "validation (Kornblith 2019, Kumar 2022); sgd: the head trained by the loop at training.learning_rate", "logistic"
    )
    c_grid: list[float] = _help(
        "inverse L2 strengths C swept on validation (solver=logistic; features standardised)",
        factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0],
    )
    max_iter: int = _help("L-BFGS iteration cap per C (solver=logistic)", 1000)

    def __post_init__(self) -> None:
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ConfigError(f"method.probe.c_grid must be a non-empty list of values > 0, got {self.c_grid}")
        if self.max_iter < 1:
            raise ConfigError(f"method.probe.max_iter must be >= 1, got {self.max_iter}")


METHODS = ("full", "lora", "linear_probe", "scratch", "lp_ft")


@dataclass
class MethodConfig:
    name: Literal["full", "lora", "linear_probe", "scratch", "lp_ft"] = _help(
        "full: all weights; lora: low-rank adapters + new head; linear_probe: frozen backbone, head only; "
        "scratch: same architecture, random init (no-transfer baseline); lp_ft: linear probe, then full fine-tune",
        "lora",
    )
    lora: LoraSettings = _help("LoRA settings (method.name=lora)", factory=LoraSettings)
    lp_ft: LpFtSettings = _help("probe phase of method.name=lp_ft", factory=LpFtSettings)
    probe: ProbeSettings = _help("how linear_probe and lp_ft's probe phase fit the head", factory=ProbeSettings)


@dataclass
class TrainingConfig:
    seed: int = _help("seed of initialisation, data order and dropout", 42)
    epochs: int = _help("passes over the training set", 3)
    max_steps: int | None = _help("stop after this many optimizer steps (overrides epochs)", None)
    batch_size: int = _help("per-device training batch size", 16)
    gradient_accumulation_steps: int = _help("micro-batches per optimizer step", 1)
    learning_rate: float = _help("peak learning rate", 5e-4)
    weight_decay: float = _help("decoupled weight decay (not on biases and norms)", 0.01)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = _help("schedule after warmup", "linear")
    warmup_ratio: float = _help("share of steps spent warming up", 0.1)
    max_grad_norm: float | None = _help("gradient clipping norm; null disables", 1.0)
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = _help(
        "autocast precision: bf16 runs on GPUs and on CPUs with bf16 instructions (amx_bf16/avx512_bf16), fp16 on GPUs "
        "only; auto picks per device (hftl/run/precision.py)", "no"
    )
    feature_cache: bool = _help(
        "linear_probe and lp_ft's probe phase: compute the frozen backbone's features once and train the head on "
        "them (off by itself where augmentation is on)", True
    )
    eval_steps: int | None = _help("evaluate every N optimizer steps; null: at the end of each epoch", None)
    metric_for_best: str = _help("validation metric that picks the best checkpoint", "accuracy")
    greater_is_better: bool = _help("direction of metric_for_best", True)
    early_stopping_patience: int | None = _help("stop after this many evaluations without improvement", None)
    min_steps: int | None = _help(
        "early stopping may not stop the run before this many optimizer steps (Lightning's min_steps): a plateau at the "
        "start, e.g. a few-shot fine-tune still predicting one class while its rate warms up, is not convergence; "
        "null: no minimum", None
    )
    save_total_limit: int = _help("checkpoints kept on disk (oldest deleted first)", 2)
    resume_from: str | None = _help("checkpoint folder, or 'latest' for the newest in output.dir", None)
    tracking: Literal["none", "tensorboard", "wandb", "trackio", "mlflow"] = _help(
        "experiment tracker (mlflow: MLFLOW_TRACKING_URI names the server or store; one experiment per run name "
        "unless MLFLOW_EXPERIMENT_NAME is set)",
        "tensorboard",
    )
    log_every_steps: int = _help("log the training loss every N optimizer steps", 10)
    num_workers: int = _help("DataLoader worker processes", 0)
    gradient_checkpointing: bool = _help(
        "recompute activations in the backward pass: less memory for about a third more compute", False
    )

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "gradient_accumulation_steps", "log_every_steps", "save_total_limit"):
            if getattr(self, key) < 1:
                raise ConfigError(f"training.{key} must be >= 1, got {getattr(self, key)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"training.max_steps must be >= 1, got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ConfigError(f"training.learning_rate must be > 0, got {self.learning_rate}")
        if self.min_steps is not None and self.min_steps < 0:
            raise ConfigError(f"training.min_steps must be >= 0, got {self.min_steps}")
        if self.min_steps is not None and self.max_steps is not None and self.min_steps > self.max_steps:
            raise ConfigError(f"training.min_steps ({self.min_steps}) is above training.max_steps ({self.max_steps})")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"training.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass
class EvaluationConfig:
    metrics: list[str] = _help(
        "metrics computed on validation and test", factory=lambda: ["accuracy", "f1_macro", "precision_macro", "recall_macro"]
    )
    batch_size: int = _help("evaluation batch size", 64)
    test: bool = _help("score the best model on the test split at the end", True)
    transferability: bool = _help(
        "before training: LogME, k-NN and linear-probe scores of the initial model's frozen features "
        "(results.json 'transferability')",
        False,
    )
    shift: bool = _help(
        "after training: metrics on shifted copies of the SAME test rows (vision corruptions, audio noise/reverb/band/voices, "
        "first sentence of texts) (results.json 'shift')",
        False,
    )
    shift_severities: list[int] = _help("vision corruption severities (1..5) scored by evaluation.shift", factory=lambda: [1, 3, 5])
    shift_variants: list[str] | None = _help(
        "names of the shifted copies evaluation.shift scores, as results.json names them (gaussian_noise@3, contrast@3, "
        "snr_5db_noise, telephone_band, voice_heldout_klatt, first_sentence, ...); null: every copy of the modality",
        None,
    )
    forgetting: bool = _help(
        "after training: k-NN accuracy on a held-out probe set (vision zoo:digits, text zoo:fortunes) and linear CKA, "
        "source backbone vs fine-tuned; Whisper: WER of the original decoder on the fine-tuned encoder "
        "(results.json 'forgetting')",
        False,
    )
    probe_max_samples: int = _help(
        "rows (stratified) transferability and forgetting use at most: keeps their cost small (shift scores the "
        "test rows themselves)", 500
    )
    forgetting_rows: int | None = _help(
        "probe rows of the forgetting measurement (2/3 k-NN reference, 1/3 scored, paired before/after); "
        "null: probe_max_samples", None
    )

    def __post_init__(self) -> None:
        if not self.shift_severities or any(not 1 <= s <= 5 for s in self.shift_severities):
            raise ConfigError(f"evaluation.shift_severities must be a non-empty list of 1..5, got {self.shift_severities}")
        if self.shift_variants is not None and (not self.shift_variants or len(set(self.shift_variants)) != len(self.shift_variants)):
            raise ConfigError(f"evaluation.shift_variants must be null or distinct names, got {self.shift_variants}")
        if self.probe_max_samples < 10:
            raise ConfigError(f"evaluation.probe_max_samples must be >= 10, got {self.probe_max_samples}")
        if self.forgetting_rows is not None and self.forgetting_rows < 10:
            raise ConfigError(f"evaluation.forgetting_rows must be >= 10, got {self.forgetting_rows}")


@dataclass
class StudyConfig:
    """Set by ``hftl compare`` for the runs of a study (results.json 'study' and 'per_row')."""

    selection: str | None = _help(
        "JSON of how this run's hyper-parameters were chosen on validation (searched, chosen, metric, value, trials); "
        "hftl compare writes it, the run records it", None
    )
    per_row: bool = _help(
        "record the test rows' ids and each row's correctness, clean and under every shift (results.json 'per_row')",
        False,
    )

    def __post_init__(self) -> None:
        if self.selection is not None:
            import json

            try:
                json.loads(self.selection)
            except ValueError as err:
                raise ConfigError(f"study.selection must be JSON: {err}") from err


TASKS = ("classification", "speech_recognition")
TRANSCRIPT_METRICS = ("wer", "cer")


@dataclass
class SpeechRecognitionConfig:
    """task=speech_recognition: how transcripts are generated and what is measured besides the splits' WER."""

    num_beams: int = _help("evaluation generates transcripts greedily (1) or with beam search of this width", 1)
    max_new_tokens: int = _help("longest transcript generated, in tokens", 96)
    source_baseline: bool = _help(
        "before training: WER/CER of the source model on validation, test and asr.extra_splits "
        "(results.json source_model)", True
    )
    freeze_encoder: bool = _help(
        "the encoder keeps the source's weights, only the decoder adapts (full: decoder fine-tuning; lora: the "
        "decoder's adapters): for a shift in the words more than in the sound", False
    )
    extra_splits: list[str] = _help(
        "further splits of data.source scored before and after training, e.g. test_noisy (shift) and source_probe "
        "(forgetting) (results.json extra_splits)", factory=list
    )

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError(f"asr.num_beams must be >= 1, got {self.num_beams}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"asr.max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class ExportConfig:
    enabled: bool = _help("export to ONNX at the end of training", False)
    quantize: bool = _help("also write a dynamic int8 model", True)
    parity_atol: float = _help("max abs logit difference allowed between PyTorch and ONNX fp32", 1e-4)
    max_int8_accuracy_drop: float = _help("max test accuracy lost by int8 (0.01 = 1 point)", 0.01)
    max_int8_wer_increase: float = _help("speech recognition: max test WER added by int8 over ONNX fp32 (0.02 = 2 points)", 0.02)
    # Whisper's decoder logits run to ~+-20 over a 51k vocabulary: whisper-tiny's ORT fp32 differed by 1.5e-4.
    speech_logits_atol: float = _help(
        "speech recognition: max abs decoder-logit difference between PyTorch and ONNX fp32 on a fixed prefix", 1e-3
    )
    num_threads: int | None = _help("threads for latency measurements (both backends); default: all cores", None)
    latency_repeats: int = _help("timed calls per backend and batch size", 20)
    max_samples: int | None = _help("cap on test rows used for the parity and accuracy check", None)
    opset: int | None = _help("ONNX opset; default: optimum's choice", None)


@dataclass
class OutputConfig:
    dir: str = _help("run directory", "runs/default")
    overwrite: bool = _help("replace a finished run in dir", False)
    save_merged: bool = _help("write model/ (merged, ready for from_pretrained)", True)


# Field metadata marking the field that holds the modalities' sections (the loader lists them as top-level keys).
MODALITY_SECTIONS = "modality_sections"

# OWNER/NAME as the Hub accepts it (huggingface_hub's validate_repo_id, without importing it here).
_REPO_ID = re.compile(r"^[\w.-]{1,96}/[\w.-]{1,96}$")


@dataclass
class PushConfig:
    """Where and what to share on the Hugging Face Hub. The token is never part of a config: HF_TOKEN or `hf auth login`."""

    enabled: bool = _help("push to the Hugging Face Hub at the end of training (main process only)", False)
    repo_id: str | None = _help("OWNER/NAME of the Hub model repo (created if missing)", None)
    what: Literal["adapter", "merged", "onnx"] = _help(
        "adapter: the PEFT adapter (method=lora); merged: model/ ready for from_pretrained; onnx: onnx/ (needs export)",
        "adapter",
    )
    private: bool = _help("create the repo as private (an existing repo keeps its visibility)", False)
    revision: str | None = _help("branch to push to (created from main if missing); default: main", None)
    commit_message: str | None = _help("commit message; default names the run and what is pushed", None)
    license: str | None = _help("license id for the model card metadata, e.g. apache-2.0 or mit", None)

    def __post_init__(self) -> None:
        if self.enabled and not self.repo_id:
            raise ConfigError("push.repo_id must be set (OWNER/NAME) when push.enabled=true")
        if self.repo_id is not None and (
            not _REPO_ID.match(self.repo_id) or ".." in self.repo_id or "--" in self.repo_id
        ):
            raise ConfigError(f"push.repo_id must look like OWNER/NAME (letters, digits, '-', '_', '.'), got {self.repo_id!r}")
        if self.revision is not None and not self.revision.strip():
            raise ConfigError("push.revision must be a branch name or null")
        if self.commit_message is not None and not self.commit_message.strip():
            raise ConfigError("push.commit_message must not be empty (use null for the default)")


@dataclass
class Config:
    name: str | None = _help("run name (default: the output folder's name)", None)
    modality: str = _help("what the inputs are: a registered modality (text, vision, audio)", "text")
    task: str = _help(
        "what the model outputs: classification (one label per input) or speech_recognition (a transcript; "
        "data.label_column holds it)", "classification"
    )
    model: ModelConfig = _help("backbone", factory=ModelConfig)
    data: DataConfig = _help("data source, columns, splits, subsampling", factory=DataConfig)
    method: MethodConfig = _help("how to transfer", factory=MethodConfig)
    training: TrainingConfig = _help("the optimisation loop", factory=TrainingConfig)
    evaluation: EvaluationConfig = _help("metrics", factory=EvaluationConfig)
    study: StudyConfig = _help("what a compare study records about the run", factory=StudyConfig)
    export: ExportConfig = _help("ONNX export", factory=ExportConfig)
    output: OutputConfig = _help("where results go", factory=OutputConfig)
    push: PushConfig = _help("share the result on the Hugging Face Hub", factory=PushConfig)
    asr: SpeechRecognitionConfig = _help(
        "transcript generation and extra measurements (task=speech_recognition)", factory=SpeechRecognitionConfig
    )
    # modality name -> that modality's settings; YAML and to_dict() show each as a top-level section (``text:``)
    sections: dict[str, Any] = field(
        default_factory=dict, repr=False, metadata={"help": "the modalities' own settings", MODALITY_SECTIONS: True}
    )

    def __post_init__(self) -> None:
        if self.modality not in registered_modalities():
            raise ConfigError(f"modality: {self.modality!r} is not one of {registered_modalities()}")
        known = modality_sections()
        for name, value in self.sections.items():
            if name not in known:
                raise ConfigError(f"unknown section '{name}'; the modalities' sections are {sorted(known)}")
            if not isinstance(value, known[name]):
                raise ConfigError(f"section '{name}' must be a {known[name].__name__}, got {type(value).__name__}")
        self.sections = {name: self.sections.get(name) or schema() for name, schema in known.items()}
        if self.task not in TASKS:
            raise ConfigError(f"task: {self.task!r} is not one of {list(TASKS)}")
        if self.task == "speech_recognition":
            self._check_speech_recognition()
        # Checked before training starts, so a run does not end with a push that cannot happen.
        push = self.push
        if push.enabled and push.what == "adapter" and self.method.name != "lora":
            raise ConfigError(f"push.what=adapter needs method.name=lora (got {self.method.name}); use push.what=merged")
        if push.enabled and push.what == "merged" and not self.output.save_merged:
            raise ConfigError("push.what=merged needs output.save_merged=true")
        if push.enabled and push.what == "onnx" and not self.export.enabled:
            raise ConfigError("push.what=onnx needs export.enabled=true")
        resume = self.training.resume_from
        if self.method.name == "lp_ft" and resume is not None and resume != "latest":
            # Two phases keep two checkpoint series (RUN/probe_phase/checkpoints, RUN/checkpoints): 'latest' picks both.
            raise ConfigError(f"method.name=lp_ft resumes with training.resume_from=latest only (got {resume!r})")

    def __getattr__(self, name: str) -> Any:
        """``cfg.text``, ``cfg.vision``, ...: a modality's section (only reached when no field has the name)."""
        sections = self.__dict__.get("sections")  # absent while pickle / copy rebuild the object
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"'Config' has no field or modality section {name!r}")

    def section(self, modality: str) -> Any:
        """The settings of ``modality`` (a dataclass), or None when it declares none."""
        return self.sections.get(modality)

    def _check_speech_recognition(self) -> None:
        if self.modality != "audio":
            raise ConfigError(f"task=speech_recognition needs modality=audio (got {self.modality})")
        if self.method.name in ("linear_probe", "lp_ft"):
            raise ConfigError(
                f"method.name={self.method.name}: a probe trains a new head on frozen features; a speech recogniser "
                "has no new head (its decoder writes the words). Use lora, full or scratch"
            )
        measured = [k for k in ("transferability", "shift", "forgetting") if getattr(self.evaluation, k)]
        if measured:
            raise ConfigError(
                f"evaluation.{measured[0]} measures a classifier's features; a speech recogniser measures shift and "
                "forgetting as WER on further splits: set it to false and list them in asr.extra_splits"
            )
        wrong = [m for m in self.evaluation.metrics if m not in TRANSCRIPT_METRICS]
        if wrong:
            raise ConfigError(
                f"evaluation.metrics: {wrong} do not score transcripts; task=speech_recognition computes "
                f"{list(TRANSCRIPT_METRICS)} (set evaluation.metrics=[wer, cer], training.metric_for_best=wer, "
                "training.greater_is_better=false)"
            )
        if self.asr.freeze_encoder and self.method.name == "scratch":
            raise ConfigError("asr.freeze_encoder=true with method.name=scratch would freeze a random encoder")
        if self.training.metric_for_best not in (*self.evaluation.metrics, "loss"):
            raise ConfigError(f"training.metric_for_best={self.training.metric_for_best!r} is not computed for "
                              f"task=speech_recognition; choose from {[*self.evaluation.metrics, 'loss']}")  # fmt: skip
        if self.training.metric_for_best in TRANSCRIPT_METRICS and self.training.greater_is_better:
            raise ConfigError(f"training.metric_for_best={self.training.metric_for_best}: lower is better; set "
                              "training.greater_is_better=false")  # fmt: skip

    @property
    def run_name(self) -> str:
        return self.name or Path(self.output.dir).name

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data, the modalities' sections at the top level (the YAML a run saves)."""
        values = dataclasses.asdict(self)
        values.update(values.pop("sections"))
        return values


def modality_sections() -> dict[str, type]:
    """Each registered modality's settings dataclass, by modality name, in the modalities' order.

    Raises:
        ConfigError: a modality's name is also a name of the config's own (e.g. ``data``), so its section would clash.
    """
    own = {f.name for f in dataclasses.fields(Config)}
    sections = {}
    for name in registered_modalities():
        schema = get_modality(name).config_section
        if schema is None:
            continue
        if name in own:
            raise ConfigError(f"modality {name!r} cannot have a config section: '{name}' is already a config key")
        sections[name] = schema
    return sections
