"""Recordings (ccengine/console/recordings.py): only the call's own file; the sweeper."""
import os

from prometheus_client import CollectorRegistry
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from ccengine.console import recordings
from ccengine.console.recordings import recording_path, sweep


def test_only_the_calls_own_file_inside_the_directory(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "1.2.wav").write_bytes(b"RIFF")
    (tmp_path / "other.wav").write_bytes(b"RIFF")
    os.symlink(tmp_path / "other.wav", rec / "3.4.wav")
    assert recording_path(str(rec), "1.2", {"recording": "1.2.wav"}) == rec / "1.2.wav"
    assert recording_path(str(rec), "1.2", {}) is None                       # not recorded
    assert recording_path(str(rec), "1.2", {"recording": "../other.wav"}) is None
    assert recording_path(str(rec), "..", {"recording": "...wav"}) is None
    assert recording_path(str(rec), "5.6", {"recording": "5.6.wav"}) is None  # no file
    assert recording_path(str(rec), "3.4", {"recording": "3.4.wav"}) is None  # symlink out


def test_sweeper_deletes_only_old_recordings_and_counts_them(tmp_path):
    for name, age_days in (("old.wav", 100), ("new.wav", 1), ("notes.txt", 100)):
        path = tmp_path / name
        path.write_bytes(b"x")
        stamp = 1796210000.0 - age_days * 86400
        os.utime(path, (stamp, stamp))
    assert sweep(str(tmp_path), 1796210000.0 - 90 * 86400) == (1, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.wav", "notes.txt"]
    assert sweep(str(tmp_path / "missing"), 0) == (0, 0)


def test_sweeper_metrics(tmp_path, monkeypatch):
    old = tmp_path / "a.wav"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))
    clock = Clock()
    clock.advance(1796210000.0)
    registry = CollectorRegistry()
    # The sweep itself runs in a thread in the engine; here in this one, to read the result.
    monkeypatch.setattr(recordings, "deferToThread", lambda f, *a: succeed(f(*a)))
    recordings.RecordingSweeper(str(tmp_path), 90, 3600, clock, registry).run()
    assert registry.get_sample_value("ccengine_recordings_deleted_total") == 1
    assert registry.get_sample_value("ccengine_recordings_sweep_errors_total") == 0
    assert registry.get_sample_value(
        "ccengine_recordings_last_sweep_timestamp_seconds") == 1796210000.0
    assert not old.exists()
