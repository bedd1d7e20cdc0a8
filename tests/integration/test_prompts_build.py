"""`prompts build` with the real espeak-ng and sox: formats, content-hash re-runs, recordings win."""
from __future__ import annotations

import dataclasses
import shutil
import wave
from pathlib import Path

import pytest

from ccengine.prompts.build import MANIFEST, build, cmd_build
from ccengine.prompts.catalogue import load_catalogue

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are not installed (the README's set-up command installs them: "
           "apt-get install espeak-ng sox)")

# Number pieces a small catalogue keeps, so the test renders a dozen files, not hundreds.
PIECES = ("num/2", "num/3", "word/minute", "word/minutes", "word/two_measure", "digit/1")


def small_catalogue(**texts: dict[str, str]):
    overrides = {"welcome": {"en": "Welcome to {company}.", "zh": "欢迎致电{company}。"},
                 "position_announce": {"en": "You are number {position}. About {w:minutes}.",
                                       "zh": "您排在第{position}位，约{w:minutes}。"}}
    overrides.update(texts)
    full = load_catalogue(overrides, company="ACME")
    prompts = {name: full.prompts[name] for name in overrides}
    specs = {lang: dataclasses.replace(spec, pieces={k: v for k, v in spec.pieces.items()
                                                     if k in PIECES})
             for lang, spec in full.specs.items()}
    return dataclasses.replace(full, prompts=prompts, specs=specs)


def wav_info(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def test_build_renders_8k_mono_wav_and_16k_wav16(tmp_path):
    """Every piece becomes an 8 kHz mono 16-bit WAV (.wav) and a 16 kHz one (.wav16), non-empty."""
    report = build(small_catalogue(), tmp_path, rates=(8000, 16000))
    assert report.failed == []
    rate, channels, width, frames = wav_info(tmp_path / "zh/ccengine/position_announce-1.wav")
    assert (rate, channels, width) == (8000, 1, 2) and frames > 800   # > 0.1 s of speech
    rate, channels, width, frames = wav_info(tmp_path / "en/ccengine/num/3.wav16")
    assert (rate, channels, width) == (16000, 1, 2) and frames > 0
    assert (tmp_path / "en/ccengine/welcome.wav").is_file()
    assert (tmp_path / "zh/ccengine/word/two_measure.wav").is_file()
    assert (tmp_path / "zh/ccengine" / MANIFEST).is_file()
    # per language: 5 of the PIECES (en has no 两, zh no plural) + welcome + 2 static parts
    assert len(report.built) == 2 * 2 * (5 + 3)


def test_rerun_builds_nothing_and_one_changed_text_rebuilds_only_it(tmp_path):
    """The content hash skips unchanged files; a changed text rebuilds just that file."""
    build(small_catalogue(), tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.wav")}
    again = build(small_catalogue(), tmp_path)
    assert again.built == [] and again.removed == [] and again.failed == []
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.wav")} == before

    changed = build(small_catalogue(welcome={"en": "Hello from {company}!", "zh": "欢迎致电{company}。"}),
                    tmp_path)
    assert changed.built == ["en/welcome.wav"]
    assert changed.failed == []


def test_recording_wins_and_is_never_touched(tmp_path):
    """An admin's recording replaces the rendition, is copied as is, and the original stays intact."""
    sounds, recordings = tmp_path / "sounds", tmp_path / "recordings"
    build(small_catalogue(), sounds)
    (recordings / "en").mkdir(parents=True)
    studio = recordings / "en" / "welcome.gsm"
    studio.write_bytes(b"studio recording bytes")
    stat = studio.stat()

    report = build(small_catalogue(), sounds, recordings)
    assert report.recordings == ["en/welcome"]
    assert (sounds / "en/ccengine/welcome.gsm").read_bytes() == b"studio recording bytes"
    assert not (sounds / "en/ccengine/welcome.wav").exists()   # Asterisk must not pick ours
    assert report.removed == ["en/welcome.wav"]
    again = build(small_catalogue(welcome={"en": "New text {company}.", "zh": "新{company}。"}),
                  sounds, recordings)
    assert again.built == ["zh/welcome.wav"]
    assert studio.read_bytes() == b"studio recording bytes"
    assert studio.stat().st_mtime_ns == stat.st_mtime_ns


def test_file_placed_in_the_sounds_tree_is_treated_as_a_recording(tmp_path):
    """A sound file the manifest does not list is the admin's: never overwritten or removed."""
    own = tmp_path / "zh/ccengine/welcome.wav"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"admin file")
    mtime = own.stat().st_mtime_ns
    report = build(small_catalogue(), tmp_path)
    assert "zh/welcome" in report.recordings
    assert own.read_bytes() == b"admin file" and own.stat().st_mtime_ns == mtime


def test_cmd_build_prints_the_report(tmp_path):
    """The CLI entry renders the default catalogue's zh/en files and exits 0 (slowest test here)."""
    lines: list[str] = []
    code = cmd_build(None, company="ACME", languages=("zh", "en"), default_language="zh",
                     sounds_dir=tmp_path, recordings_dir=None, out=lines.append)
    assert code == 0
    assert lines[0].startswith("built ") and "failed 0" in lines[0]
    assert (tmp_path / "zh/ccengine/agent_number-1.wav").is_file()


def _edge_silence(path: Path) -> tuple[float, float]:
    """Seconds of near-silence (|sample| < 1 % of full scale) at the start and at the end."""
    import array
    with wave.open(str(path), "rb") as w:
        rate, samples = w.getframerate(), array.array("h", w.readframes(w.getnframes()))
    loud = [i for i, s in enumerate(samples) if abs(s) > 327]
    return loud[0] / rate, (len(samples) - 1 - loud[-1]) / rate


def test_rendered_pieces_have_their_silence_trimmed(tmp_path):
    """A digit and the agent-number prompt's pieces start within 20 ms and end within about
    0.1 s (the 0.06 s gap kept between pieces), where espeak-ng alone pads each end with about
    0.15 s: the agent-number announcement the caller hears before the bridge (transcripts3:
    4.5 s, half of it silence) shrinks by that much per piece."""
    from ccengine.prompts.build import EspeakRenderer
    renderer = EspeakRenderer()
    for text, voice in (("1", "cmn-latn-pinyin"), ("工号", "cmn-latn-pinyin"),
                        ("Agent", "en")):
        dest = tmp_path / f"{len(list(tmp_path.iterdir()))}.wav"
        renderer.render(text, voice, 8000, dest)
        start, end = _edge_silence(dest)
        assert start < 0.03 and end < 0.12, (text, start, end)
