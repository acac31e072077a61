"""Speak text with Debian's ``espeak-ng`` into a 16 kHz mono float32 waveform."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from hftl.zoo import ZooError

INSTALL_HINT = "install it with `apt-get install espeak-ng` (the Makefile's setup does this on Debian/Ubuntu)"


def espeak_binary() -> str:
    """Return the path of ``espeak-ng``.

    Raises:
        ZooError: It is not installed; the message says how to install it.
    """
    path = shutil.which("espeak-ng")
    if path is None:
        raise ZooError(f"espeak-ng is not installed (needed to synthesise speech): {INSTALL_HINT}")
    return path


def speak(
    text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50, sample_rate: int = 16_000
) -> np.ndarray:
    """Synthesise ``text`` and return it as a mono float32 array at ``sample_rate``.

    Args:
        text: What to say.
        voice: An espeak-ng voice, e.g. ``"en-us"``, ``"en+m3"``, ``"en+f2"``.
        speed: Words per minute (``-s``).
        pitch: 0..99 (``-p``).
        sample_rate: Output rate; espeak-ng writes 22050 Hz, so soxr resamples.

    Raises:
        ZooError: espeak-ng is missing, fails, or writes no audio.
    """
    import soundfile as sf
    import soxr

    binary = espeak_binary()
    with tempfile.TemporaryDirectory(prefix="hftl-espeak-") as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file():
            raise ZooError(
                f"espeak-ng failed (exit {proc.returncode}) for voice {voice!r}: {proc.stderr.strip()}"
            )
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
    if audio.size == 0 or not np.abs(audio).max() > 0:
        raise ZooError(f"espeak-ng wrote silence for voice {voice!r}")
    return audio
