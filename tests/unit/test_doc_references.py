"""Every file a document names (`a/path.ext` or `a/folder/` in backticks) is in this
repository: at the root, under ccengine/ (package-relative names such as `agi/wire.py`), under
deploy/<part>/ or tests/fixtures/. The few references to other projects' files are listed here
with whose they are; no document points outside the repository or at an issue's item numbers."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "bench" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
BASES = [ROOT, ROOT / "ccengine", *sorted((ROOT / "deploy").iterdir()), ROOT / "tests" / "fixtures"]
# Other projects' files, named as such in the text around them.
EXTERNAL = {
    "apps/app_queue.c": "Asterisk source",
    "configs/samples/features.conf.sample": "Asterisk source",
    "asyncio/tasks.py": "CPython standard library",
    "ccengine/globals_ccengine.conf": "the #include path inside Asterisk's /etc/asterisk",
    "recordings/zh/welcome.wav": "an admin's recording, an example path",
    "recordings/zh/num/5.gsm": "an admin's recording, an example path",
}
# Folders the tests write (git-ignored): named by the documents, absent in a fresh clone until
# those tests have run.
MADE_BY_TESTS = {"tests/browser/artefacts/", "tests/asterisk/artefacts/"}
REF = re.compile(r"`([\w./-]+/(?:[\w.-]+\.\w+|))(?:::\w+|:\d+)?`")


def references():
    for doc in DOCS:
        for match in REF.finditer(doc.read_text("utf-8")):
            yield doc.relative_to(ROOT), match.group(1)


def test_every_named_file_is_in_the_repository():
    missing = sorted({(str(doc), ref) for doc, ref in references()
                      if ref not in EXTERNAL and ref not in MADE_BY_TESTS
                      and not ref.startswith(("/", "../"))
                      and not re.match(r"\d+\.\d+\.\d+\.\d+/", ref)      # address/netmask
                      and not any((base / ref).exists() for base in BASES)})
    assert missing == []


def test_no_document_points_outside_the_repository_or_at_issue_items():
    for doc in DOCS:
        text = doc.read_text("utf-8")
        assert "../shared" not in text, doc
        assert not re.search(r"issue \d+, item", text), doc
