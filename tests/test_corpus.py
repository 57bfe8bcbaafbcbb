"""dftlab.corpus: the shipped public-domain corpora."""
import shutil

import pytest

from dftlab import corpus


def test_each_corpus_loads_as_non_empty_paragraphs():
    for name in corpus.CORPUS_FILES:
        paragraphs = corpus.load_corpus(name)
        assert len(paragraphs) > 1000 and all(p.strip() for p in paragraphs), name


def test_the_bible_starts_where_it_should_and_passages_join_verses():
    verses = corpus.load_corpus("kjv")
    assert "In the beginning God created the heaven and the earth" in verses[0]
    passages = corpus.kjv_passages(4)
    assert passages[0] == " ".join(verses[:4]) and len(passages) == -(-len(verses) // 4)


def test_an_unknown_corpus_names_the_ones_there_are():
    with pytest.raises(ValueError, match=r"unknown corpus 'bible'.*devils_dictionary.*kjv"):
        corpus.load_corpus("bible")


def test_a_corrupted_file_says_how_to_restore_it(tmp_path, monkeypatch):
    folder = tmp_path / "corpus"
    shutil.copytree(corpus.CORPUS_DIR, folder)
    (folder / corpus.CORPUS_FILES["kjv"]).write_bytes(b"not xz at all")
    monkeypatch.setattr(corpus, "CORPUS_DIR", folder)
    with pytest.raises(RuntimeError, match="is corrupted.*git checkout"):
        corpus.load_corpus("kjv")
