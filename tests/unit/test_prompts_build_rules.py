"""Builder bookkeeping with a fake renderer: stale files, recordings removed, manifest-first writes."""
from __future__ import annotations

import dataclasses
import wave
from pathlib import Path

from ccengine.prompts.build import RenderError, build
from ccengine.prompts.catalogue import load_catalogue


class FakeRenderer:
    """Writes a tiny valid WAV; texts in `fail` raise RenderError like a failing espeak-ng."""

    def __init__(self, fail=()):
        self.fail = set(fail)
        self.rendered: list[str] = []

    def render(self, text, voice, rate, dest: Path):
        if text in self.fail:
            raise RenderError("espeak-ng exited with 1: boom")
        self.rendered.append(text)
        with wave.open(str(dest), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
            w.writeframes(b"\x00\x00" * 80)


def catalogue(welcome_en="Welcome to {company}."):
    full = load_catalogue({"welcome": {"en": welcome_en}}, company="ACME", languages=("en",),
                          default_language="en")
    spec = dataclasses.replace(full.specs["en"], pieces={"num/1": "1"})
    return dataclasses.replace(full, prompts={"welcome": full.prompts["welcome"]},
                               specs={"en": spec})


def test_render_failure_is_reported_and_leaves_no_file(tmp_path):
    """A failed render is listed with its reason, and no partial file is left behind."""
    report = build(catalogue(), tmp_path, renderer=FakeRenderer(fail={"Welcome to ACME."}))
    assert report.failed == [("en/welcome.wav", "espeak-ng exited with 1: boom")]
    assert not (tmp_path / "en/ccengine/welcome.wav").exists()
    assert list((tmp_path / "en/ccengine").glob(".*.tmp")) == []


def test_split_prompt_removes_the_old_rendition(tmp_path):
    """When a prompt gains a placeholder its old single file is removed (it is ours)."""
    build(catalogue(), tmp_path, renderer=FakeRenderer())
    report = build(catalogue("Welcome, caller {n}."), tmp_path, renderer=FakeRenderer())
    assert report.built == ["en/welcome-1.wav"]
    assert report.removed == ["en/welcome.wav"]
    assert not (tmp_path / "en/ccengine/welcome.wav").exists()


def test_removed_recording_is_rendered_again(tmp_path):
    """When the admin deletes a recording, its copy is dropped and the text is rendered again."""
    rec = tmp_path / "rec/en/welcome.wav"
    rec.parent.mkdir(parents=True)
    rec.write_bytes(b"RIFF studio")
    renderer = FakeRenderer()
    build(catalogue(), tmp_path / "snd", tmp_path / "rec", renderer=renderer)
    assert (tmp_path / "snd/en/ccengine/welcome.wav").read_bytes() == b"RIFF studio"
    assert renderer.rendered == ["1"]
    rec.unlink()
    report = build(catalogue(), tmp_path / "snd", tmp_path / "rec", renderer=renderer)
    assert report.built == ["en/welcome.wav"]
    assert renderer.rendered == ["1", "Welcome to ACME."]
