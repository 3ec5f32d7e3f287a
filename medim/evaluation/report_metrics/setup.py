"""WordNet for NLTK's METEOR, offline: Debian's WordNet 3.0 files copied where NLTK reads them.

NLTK's METEOR matches synonyms through WordNet, which NLTK normally downloads (`nltk.download`),
as MeDiM's script does. Here nothing is downloaded: Debian's `wordnet-base` and
`wordnet-sense-index` packages hold WordNet 3.0 in /usr/share/wordnet, and NLTK reads those files
once they are copied (its path check refuses symlinks out of its data folder) into
`<nltk_data>/corpora/wordnet/` together with a `lexnames` file, which the Debian packages lack (its
45 lines are the table of the lexnames(5WN) man page). medim's nltk_data folder is
`<medim cache>/nltk_data` ($MEDIM_CACHE, else ~/.cache/medim), put first on `nltk.data.path` when a
protocol uses METEOR. The multilingual Open Multilingual Wordnet (`omw-1.4`, which MeDiM also
downloads) is not needed: METEOR only looks up English synsets.

    apt-get install -y wordnet-base wordnet-sense-index    # as root, once per machine
    python -m medim.evaluation.report_metrics.setup         # the copy (also done on first use)

The copy is idempotent (a complete copy is kept) and atomic (made beside the target, then renamed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from medim.evaluation.report_metrics.requirements import MetricSetupError, missing_packages
from medim.io import cache_root

#: Where Debian's wordnet-base and wordnet-sense-index install WordNet 3.0.
DEBIAN_WORDNET = Path("/usr/share/wordnet")
#: The root command that installs them.
APT_COMMAND = "apt-get install -y wordnet-base wordnet-sense-index"
#: The command that copies them where NLTK reads them.
SETUP_COMMAND = "python -m medim.evaluation.report_metrics.setup"
#: The files of WordNet 3.0 that NLTK's WordNetCorpusReader opens, besides `lexnames` (written here).
WORDNET_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)
#: WordNet 3.0's lexicographer files in file-number order (00-44), the table of the lexnames(5WN) man page.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)  # fmt: skip
#: The syntactic category number of each lexicographer-file prefix (lexnames(5WN): 1 NOUN ... 4 ADVERB).
CATEGORIES = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def nltk_data_dir() -> Path:
    """medim's nltk_data folder: `<medim cache>/nltk_data`."""
    return cache_root() / "nltk_data"


def lexnames_text() -> str:
    """The `lexnames` file: `NN<TAB>name<TAB>category` per lexicographer file, as WordNet's own distribution has it."""
    return "".join(f"{number:02d}\t{name}\t{CATEGORIES[name.split('.')[0]]}\n" for number, name in enumerate(LEXNAMES))


def is_complete(wordnet: Path, source: Path | None = None) -> bool:
    """Whether `wordnet` (a corpora/wordnet folder) holds every file NLTK opens (with `source`'s sizes, if given)."""
    if not (wordnet / "lexnames").is_file() or (wordnet / "lexnames").read_text() != lexnames_text():
        return False
    for name in WORDNET_FILES:
        copy = wordnet / name
        if not copy.is_file() or (source is not None and copy.stat().st_size != (source / name).stat().st_size):
            return False
    return True


def install_wordnet(source: Path = DEBIAN_WORDNET, target: Path | None = None) -> Path:
    """Copy WordNet 3.0 from `source` into `<target>/corpora/wordnet` (target: medim's nltk_data); returns that folder.

    Nothing is copied when a complete copy is already there. A MetricSetupError names the apt command
    when `source` lacks a file.
    """
    wordnet = (target if target is not None else nltk_data_dir()) / "corpora" / "wordnet"
    absent = [name for name in WORDNET_FILES if not (source / name).is_file()]
    if absent:
        raise MetricSetupError(
            f"WordNet 3.0 not found in {source} (missing {', '.join(absent[:3])}{', ...' if len(absent) > 3 else ''}): "
            f"install Debian's packages as root with `{APT_COMMAND}`, then run `{SETUP_COMMAND}`"
        )
    if is_complete(wordnet, source):
        return wordnet
    wordnet.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=wordnet.parent))
    try:
        staging.chmod(0o755)  # readable like any installed data (mkdtemp makes it private)
        for name in WORDNET_FILES:
            shutil.copyfile(source / name, staging / name)  # a copy, never a link: NLTK refuses links out of its folder
        (staging / "lexnames").write_text(lexnames_text())
        if wordnet.exists():  # an incomplete earlier copy
            shutil.rmtree(wordnet)
        os.replace(staging, wordnet)
    except OSError:
        if not is_complete(wordnet, source):  # not another process finishing the same copy first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return wordnet


def ensure_wordnet() -> None:
    """Make NLTK's `wordnet` corpus loadable: medim's copy first (made from Debian's files when absent), else
    whatever NLTK already finds (e.g. a `nltk.download('wordnet')`); a MetricSetupError naming the fix otherwise."""
    problem = missing_packages("nltk")
    if problem is not None:
        raise MetricSetupError(problem)
    import nltk

    root = nltk_data_dir()
    if not is_complete(root / "corpora" / "wordnet") and _nltk_finds_wordnet():
        return
    if not is_complete(root / "corpora" / "wordnet"):
        install_wordnet(DEBIAN_WORDNET, root)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))


def missing_wordnet() -> str | None:
    """None when NLTK can load WordNet (after `ensure_wordnet`); otherwise what to run."""
    try:
        ensure_wordnet()
    except MetricSetupError as exc:
        return str(exc)
    return None


def _nltk_finds_wordnet() -> bool:
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Copy WordNet where NLTK reads it and check that NLTK's METEOR runs; 0 on success, 1 with the fix otherwise."""
    parser = argparse.ArgumentParser(prog=SETUP_COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEBIAN_WORDNET, help="WordNet 3.0 dict folder (Debian's)")
    parser.add_argument("--target", type=Path, default=None, help="an nltk_data folder (default: medim's)")
    args = parser.parse_args(argv)
    try:
        wordnet = install_wordnet(args.source, args.target)
    except MetricSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"WordNet 3.0 is in {wordnet}")
    if args.target is None:
        ensure_wordnet()
        from nltk.translate.meteor_score import single_meteor_score

        score = single_meteor_score("the heart is enlarged".split(), "the heart size is normal".split())
        print(f"NLTK METEOR runs offline (a sample pair scores {score:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
