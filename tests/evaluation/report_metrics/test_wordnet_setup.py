"""The offline WordNet set-up: Debian's files copied (never linked) where NLTK reads them, with a `lexnames` file."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from medim.evaluation.report_metrics import setup
from medim.evaluation.report_metrics.requirements import MetricSetupError

MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")


@pytest.fixture()
def debian_like(tmp_path: Path) -> Path:
    """A stand-in for /usr/share/wordnet: every file NLTK opens, with made-up contents."""
    source = tmp_path / "wordnet-source"
    source.mkdir()
    for name in setup.WORDNET_FILES:
        (source / name).write_text(f"contents of {name}\n")
    return source


def test_copies_every_file_and_writes_lexnames(debian_like: Path, tmp_path: Path) -> None:
    wordnet = setup.install_wordnet(debian_like, tmp_path / "nltk_data")
    assert wordnet == tmp_path / "nltk_data" / "corpora" / "wordnet"
    assert sorted(p.name for p in wordnet.iterdir()) == sorted([*setup.WORDNET_FILES, "lexnames"])
    for name in setup.WORDNET_FILES:
        assert not (wordnet / name).is_symlink()  # NLTK refuses links that lead out of its data folder
        assert (wordnet / name).read_text() == f"contents of {name}\n"
    lines = (wordnet / "lexnames").read_text().splitlines()
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[-1] == "44\tadj.ppl\t3"
    assert [line.split("\t")[0] for line in lines] == [f"{i:02d}" for i in range(45)]


def test_a_complete_copy_is_kept_and_an_incomplete_one_is_redone(
    debian_like: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wordnet = setup.install_wordnet(debian_like, tmp_path)
    (wordnet / "data.noun").unlink()
    assert not setup.is_complete(wordnet)
    setup.install_wordnet(debian_like, tmp_path)
    assert setup.is_complete(wordnet, debian_like)

    def no_copy(*args: object) -> None:
        raise AssertionError("a complete copy was copied again")

    monkeypatch.setattr(setup.shutil, "copyfile", no_copy)
    assert setup.install_wordnet(debian_like, tmp_path) == wordnet
    assert not [p for p in wordnet.parent.iterdir() if p.name.startswith(".wordnet-")]  # no staging left behind


def test_missing_debian_files_name_the_apt_command(debian_like: Path, tmp_path: Path) -> None:
    (debian_like / "index.sense").unlink()  # wordnet-sense-index not installed
    with pytest.raises(
        MetricSetupError,
        match=r"missing index.sense\): install Debian's packages as root with `apt-get install -y wordnet-base "
        r"wordnet-sense-index`, then run `python -m medim.evaluation.report_metrics.setup`",
    ):
        setup.install_wordnet(debian_like, tmp_path)
    assert setup.main(["--source", str(debian_like), "--target", str(tmp_path)]) == 1


def test_use_time_setup_copies_into_medims_cache_or_names_the_fix(
    debian_like: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, needs_nltk: None
) -> None:
    import nltk

    monkeypatch.setenv("MEDIM_CACHE", str(tmp_path / "cache"))  # the made-up WordNet must not reach other tests
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    monkeypatch.setattr(setup, "_nltk_finds_wordnet", lambda: False)  # as on a machine without nltk downloads
    monkeypatch.setattr(setup, "DEBIAN_WORDNET", debian_like)
    setup.ensure_wordnet()
    assert setup.is_complete(setup.nltk_data_dir() / "corpora" / "wordnet", debian_like)
    assert nltk.data.path[0] == str(setup.nltk_data_dir())

    monkeypatch.setenv("MEDIM_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(setup, "DEBIAN_WORDNET", debian_like.parent / "no-such-folder")
    assert "apt-get install -y wordnet-base wordnet-sense-index" in setup.missing_wordnet()


def test_the_files_are_those_nltks_reader_opens(needs_nltk: None) -> None:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    assert sorted([*setup.WORDNET_FILES, "lexnames"]) == sorted(WordNetCorpusReader._FILES)


@pytest.mark.skipif(not MAN_PAGE.is_file(), reason=f"{MAN_PAGE} absent (Debian's wordnet-base installs it)")
def test_lexnames_is_the_man_pages_table() -> None:
    table = re.findall(r"^(\d\d)\t(\S+)\s", gzip.decompress(MAN_PAGE.read_bytes()).decode(), flags=re.MULTILINE)
    categories = {"noun": "1", "verb": "2", "adj": "3", "adv": "4"}
    expected = "".join(f"{number}\t{name}\t{categories[name.split('.')[0]]}\n" for number, name in table)
    assert setup.lexnames_text() == expected
