"""`ccengine prompts build`: render every catalogue piece that has no recording into sound files.

Layout: `<out_dir>/<lang>/ccengine/<stem>.wav` (8 kHz mono 16-bit PCM WAV, Asterisk format `wav`)
and `<stem>.wav16` (16 kHz, Asterisk format `wav16`) when 16000 is among the rates. `out_dir` is
Asterisk's sounds directory or a directory linked into it (docs/prompts.md).

A manifest (`.ccengine-manifest.json` in each `<lang>/ccengine/`) records which files the
builder wrote and the content hash they came from (text, voice, rate, builder version); a file
is rendered again only when its hash changed, so a re-run with unchanged texts writes nothing.

Recordings win and are never overwritten:
- `<recordings_dir>/<lang>/<stem>.<ext>` (wav, wav16, gsm, ulaw, alaw, sln, sln16, g722) is
  copied byte for byte into the sounds tree (the admin's file itself is only read);
- a sound file found in `<out_dir>/<lang>/ccengine/` that the manifest does not list was put
  there by someone else: it is left alone.
In both cases the builder removes its own renditions of that stem, because Asterisk picks
among all formats of a name by translation cost and could otherwise play the rendition.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from collections.abc import Callable, Iterable

from ccengine.prompts.catalogue import SOUND_DIR, Catalogue

BUILDER_VERSION = "2"   # 2: silence trimmed at both ends (TRIM)
MANIFEST = ".ccengine-manifest.json"
RATE_FORMATS = {8000: "wav", 16000: "wav16"}
RECORDING_FORMATS = ("wav", "wav16", "gsm", "ulaw", "alaw", "sln", "sln16", "g722")
TIMEOUT = 60.0


class RenderError(Exception):
    """espeak-ng or sox failed for one file."""


class Renderer(Protocol):
    def render(self, text: str, voice: str, rate: int, dest: Path) -> None: ...


# espeak-ng pads every file with about 0.15 s of silence at each end. Prompts are played piece
# by piece (a number is one file per digit), so that padding adds up where callers wait: the
# agent-number announcement before the bridge took 4.5 s in transcripts3
# (routed_call_agent_free: agent_number-1, four digits, agent_number-2), half of it silence.
# sox trims both ends (the `silence` effect, run forwards and on the reversed audio) and leaves
# a short gap so that pieces do not run into each other.
TRIM = ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
        "pad", "0", "0.06"]


class EspeakRenderer:
    """espeak-ng writes a WAV at its own rate; sox resamples it to mono 16-bit at `rate` and
    trims the silence at both ends (TRIM)."""

    def __init__(self, espeak: str = "espeak-ng", sox: str = "sox", timeout: float = TIMEOUT):
        self.espeak, self.sox, self.timeout = espeak, sox, timeout

    def missing_tools(self) -> list[str]:
        return [tool for tool in (self.espeak, self.sox) if shutil.which(tool) is None]

    def render(self, text: str, voice: str, rate: int, dest: Path) -> None:
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".render-") as tmp:
            raw = Path(tmp) / "espeak.wav"
            # Text goes on stdin (-b 1: UTF-8), never on the command line, where a leading '-'
            # would be read as an option.
            self._run([self.espeak, "-v", voice, "-b", "1", "--stdin", "-w", str(raw)], text)
            self._run([self.sox, "-V1", "-G", str(raw), "-r", str(rate), "-c", "1", "-b", "16",
                       "-e", "signed-integer", "-t", "wav", str(dest), *TRIM], None)
        with wave.open(str(dest), "rb") as check:
            if check.getnframes() == 0:
                raise RenderError(f"{dest.name}: rendered an empty file")

    def _run(self, argv: list[str], text: str | None) -> None:
        try:
            subprocess.run(argv, input=text.encode() if text is not None else None,
                           capture_output=True, timeout=self.timeout, check=True)
        except FileNotFoundError:
            raise RenderError(f"{argv[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise RenderError(f"{argv[0]} took longer than {self.timeout:.0f} s") from None
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode("utf-8", "replace").strip()[:300]
            raise RenderError(f"{argv[0]} exited with {exc.returncode}: {detail}") from None


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"built {len(self.built)}, unchanged {len(self.skipped)}, "
               f"recordings {len(self.recordings)}, removed {len(self.removed)}, "
               f"failed {len(self.failed)}"]
        out += [f"  built      {f}" for f in self.built]
        out += [f"  recording  {f}" for f in self.recordings]
        out += [f"  removed    {f}" for f in self.removed]
        out += [f"  FAILED     {f}: {why}" for f, why in self.failed]
        return out


def content_hash(text: str, voice: str, rate: int) -> str:
    return hashlib.sha256(json.dumps([BUILDER_VERSION, text, voice, rate]).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Manifest:
    """What the builder wrote in one `<lang>/ccengine/` directory: file name -> entry."""

    def __init__(self, directory: Path):
        self.path = directory / MANIFEST
        self.files: dict[str, dict] = {}
        if self.path.exists():
            self.files = json.loads(self.path.read_text("utf-8")).get("files", {})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"builder": BUILDER_VERSION, "files": self.files},
                                  indent=1, sort_keys=True, ensure_ascii=False), "utf-8")
        os.replace(tmp, self.path)


def build(catalogue: Catalogue, out_dir: Path, recordings_dir: Path | None = None,
          rates: Iterable[int] = (8000,), renderer: Renderer | None = None,
          languages: Iterable[str] | None = None) -> BuildReport:
    """Bring `out_dir` up to date with the catalogue; see the module docstring for the rules."""
    rates = tuple(rates)
    for rate in rates:
        if rate not in RATE_FORMATS:
            raise ValueError(f"rate {rate}: one of {sorted(RATE_FORMATS)}")
    renderer = renderer or EspeakRenderer()
    report = BuildReport()
    for lang in languages or catalogue.languages:
        directory = Path(out_dir) / lang / SOUND_DIR
        rec_dir = Path(recordings_dir) / lang if recordings_dir else None
        _build_language(catalogue, lang, directory, rec_dir, rates, renderer, report)
    return report


def _build_language(catalogue: Catalogue, lang: str, directory: Path, rec_dir: Path | None,
                    rates: tuple[int, ...], renderer: Renderer, report: BuildReport) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(directory)
    voice = catalogue.specs[lang].voice
    files = catalogue.files(lang)
    for stem, text in sorted(files.items()):
        label = f"{lang}/{stem}"
        (directory / stem).parent.mkdir(parents=True, exist_ok=True)
        recordings = [f"{stem}.{fmt}" for fmt in RECORDING_FORMATS
                      if rec_dir and (rec_dir / f"{stem}.{fmt}").is_file()]
        foreign = [fmt for fmt in RECORDING_FORMATS if (directory / f"{stem}.{fmt}").exists()
                   and f"{stem}.{fmt}" not in manifest.files]
        if recordings or foreign:
            kept = {f"{stem}.{fmt}" for fmt in foreign}
            for name in recordings:
                if name not in kept and rec_dir is not None:
                    _copy_recording(rec_dir / name, directory, name, manifest)
                    kept.add(name)
            _remove_own(manifest, directory, stem, keep=kept, report=report)
            report.recordings.append(label)
            continue
        # No recording: drop copies of recordings the admin has since removed, then render.
        _remove_own(manifest, directory, stem, keep=set(), report=report, source="recording")
        for rate in rates:
            name = f"{stem}.{RATE_FORMATS[rate]}"
            digest = content_hash(text, voice, rate)
            entry = manifest.files.get(name)
            if entry == {"source": "rendered", "hash": digest} and (directory / name).is_file():
                report.skipped.append(f"{lang}/{name}")
                continue
            try:
                _render(renderer, text, voice, rate, directory, name, manifest, digest)
            except RenderError as exc:
                report.failed.append((f"{lang}/{name}", str(exc)))
                continue
            report.built.append(f"{lang}/{name}")
    wanted = {f"{stem}.{RATE_FORMATS[rate]}" for stem in files for rate in rates}
    for name, entry in sorted(manifest.files.items()):
        if entry.get("source") == "rendered" and name not in wanted:
            _delete(directory / name, manifest, name, report, f"{lang}/{name}")


def _render(renderer: Renderer, text: str, voice: str, rate: int, directory: Path, name: str,
            manifest: Manifest, digest: str) -> None:
    dest = directory / name
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        renderer.render(text, voice, rate, tmp)
        # The manifest names the file before it appears: a crash in between leaves an entry
        # without a file (rebuilt next time), never an unlisted file (taken for a recording).
        manifest.files[name] = {"source": "rendered", "hash": digest}
        manifest.save()
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_recording(source: Path, directory: Path, name: str, manifest: Manifest) -> None:
    """Copy the admin's recording into the sounds tree (the source is only read)."""
    digest = file_sha256(source)
    dest = directory / name
    if manifest.files.get(name) == {"source": "recording", "sha256": digest} and dest.is_file():
        return
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        shutil.copyfile(source, tmp)
        manifest.files[name] = {"source": "recording", "sha256": digest}
        manifest.save()
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_own(manifest: Manifest, directory: Path, stem: str, keep: set[str],
                report: BuildReport, source: str | None = None) -> None:
    for fmt in RECORDING_FORMATS:
        name = f"{stem}.{fmt}"
        entry = manifest.files.get(name)
        if entry is None or name in keep or (source and entry.get("source") != source):
            continue
        _delete(directory / name, manifest, name, report, f"{directory.parent.name}/{name}")


def _delete(path: Path, manifest: Manifest, name: str, report: BuildReport, label: str) -> None:
    path.unlink(missing_ok=True)
    del manifest.files[name]
    manifest.save()
    report.removed.append(label)


def cmd_build(overrides: dict | None, *, company: str, languages: Iterable[str],
              default_language: str, sounds_dir: str | Path, recordings_dir: str | Path | None,
              rates: Iterable[int] = (8000,), out: Callable[[str], None] = print,
              renderer: Renderer | None = None) -> int:
    """`ccengine prompts build`: prints the report; exit code 0, or 1 on any failure."""
    from ccengine.prompts.catalogue import CatalogueError, load_catalogue
    try:
        catalogue = load_catalogue(overrides, company=company, languages=tuple(languages),
                                   default_language=default_language)
    except CatalogueError as exc:
        for problem in exc.problems:
            out(f"catalogue: {problem}")
        return 1
    if renderer is None:
        renderer = EspeakRenderer()
        missing = renderer.missing_tools()
        if missing:
            out(f"cannot render prompts: {', '.join(missing)} not found "
                "(Debian: apt-get install espeak-ng sox)")
            return 1
    report = build(catalogue, Path(sounds_dir), Path(recordings_dir) if recordings_dir else None,
                   rates, renderer)
    for line in report.lines():
        out(line)
    return 1 if report.failed else 0
