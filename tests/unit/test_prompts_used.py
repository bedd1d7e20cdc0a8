"""Every prompt name the engine's code plays exists in the default catalogue, in every language."""
import re
from pathlib import Path

from ccengine.prompts.catalogue import REQUIRED_PROMPTS, load_catalogue

SOURCE = Path(__file__).resolve().parents[2] / "ccengine"
CALL = re.compile(r"""\.(?:play|ask)\(\s*[\w.]+,\s*["']([a-z0-9_]+)["']""")


def played_names():
    names = {}
    for path in SOURCE.rglob("*.py"):
        for name in CALL.findall(path.read_text("utf-8")):
            names.setdefault(name, path.relative_to(SOURCE.parent))
    return names


def test_every_played_prompt_is_in_the_catalogue_in_both_languages():
    """A prompt played by code but missing from the catalogue would fall back to a beep."""
    catalogue = load_catalogue(None, company="Test", languages=("zh", "en"), default_language="zh")
    names = played_names()
    assert len(names) > 10            # the scan found the IVR's prompts
    missing = {n: str(p) for n, p in names.items()
               if n not in catalogue.prompts or not all(catalogue.has(n, l) for l in ("zh", "en"))}
    assert missing == {}


def test_every_played_prompt_is_declared_required():
    """`prompts check` relies on REQUIRED_PROMPTS: each name the code plays is in it."""
    assert set(played_names()) - set(REQUIRED_PROMPTS) == set()
