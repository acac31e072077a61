"""Does cutting Whisper's encoder to a short window hurt the source model? WER of tiny.en per window length.

    OMP_NUM_THREADS=1 python bench/asr_window.py                          # validation, windows 8 10 30 s
    OMP_NUM_THREADS=1 python bench/asr_window.py --split test --seconds 10 30

Transcribes a split of zoo:espeak-sentences greedily with the encoder cut to each window (hftl/modalities/whisper.py),
clips padded to the window; prints WER/CER and the seconds each window took (timings are noisy on a shared machine:
compare them within one run only). The ASR recipes' audio.clip_seconds comes from this.
"""

from __future__ import annotations

import argparse
import time

import torch

from hftl import zoo
from hftl.modalities.audio import fit_length, load_audio
from hftl.modalities.whisper import SAMPLE_RATE, shorten_whisper_encoder
from hftl.run.metrics.transcripts import transcript_scores
from hftl.tasks.speech_recognition import generate


def main(argv: list[str] | None = None) -> None:
    from datasets import load_from_disk
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--seconds", type=int, nargs="+", default=[8, 10, 30])
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    root, source = zoo.prepare("espeak-sentences"), zoo.prepare("whisper-tiny")
    rows = load_from_disk(str(root))[args.split]
    processor = WhisperProcessor.from_pretrained(source)
    waves = [load_audio(path, SAMPLE_RATE, root) for path in rows["audio"]]
    print(f"| window (s) | WER | CER | seconds | ({args.split}, {len(waves)} clips, longest {max(map(len, waves)) / SAMPLE_RATE:.2f} s) |")
    print("|---|---|---|---|---|")
    for seconds in args.seconds:
        model = WhisperForConditionalGeneration.from_pretrained(source).eval()
        extractor = shorten_whisper_encoder(model, seconds) if seconds < 30 else processor.feature_extractor
        start, hyps = time.perf_counter(), []
        for i in range(0, len(waves), args.batch_size):
            batch = [fit_length(w, seconds * SAMPLE_RATE) for w in waves[i : i + args.batch_size]]
            features = extractor(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
            with torch.no_grad():
                hyps += processor.tokenizer.batch_decode(generate(model, features, 1, 96), skip_special_tokens=True)
        scores = transcript_scores(rows["transcript"], hyps)
        print(f"| {seconds} | {scores['wer']:.4f} | {scores['cer']:.4f} | {time.perf_counter() - start:.1f} | |", flush=True)


if __name__ == "__main__":
    main()
