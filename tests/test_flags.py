"""One yes/no parser for environment flags and form fields alike."""

from __future__ import annotations

import pytest

from photoproc.errors import InvalidOptionsError
from photoproc.flags import FALSE_WORDS, TRUE_WORDS, env_flag, parse_bool
from photoproc.options import ProcessOptions


@pytest.mark.parametrize("word", ["1", "true", "YES", " on ", "y", "T"])
def test_yes_words(word):
    assert parse_bool(word) is True
    assert env_flag("PHOTOPROC_X", {"PHOTOPROC_X": word}) is True
    assert ProcessOptions.from_mapping({"crop_face": word}).crop_face is True


@pytest.mark.parametrize("word", ["0", "false", "No", "off", "n", "f", ""])
def test_no_words(word):
    assert parse_bool(word) is False
    assert env_flag("PHOTOPROC_X", {"PHOTOPROC_X": word}) is False
    assert ProcessOptions.from_mapping({"crop_face": word}).crop_face is False


def test_unset_flag_is_off():
    assert env_flag("PHOTOPROC_X", {}) is False


@pytest.mark.parametrize("word", ["maybe", "2", "enabled"])
def test_other_words_are_refused_naming_where_they_came_from(word):
    assert parse_bool(word) is None
    with pytest.raises(InvalidOptionsError, match="PHOTOPROC_X"):
        env_flag("PHOTOPROC_X", {"PHOTOPROC_X": word})
    with pytest.raises(InvalidOptionsError, match="crop_face"):
        ProcessOptions.from_mapping({"crop_face": word})


def test_the_word_lists_do_not_overlap():
    assert not TRUE_WORDS & FALSE_WORDS


@pytest.mark.parametrize(("word", "offline"), [("y", True), ("on", True), ("0", False)])
def test_the_offline_flag_reads_the_same_words(monkeypatch, word, offline):
    from photoproc.pipeline.models import offline_mode

    monkeypatch.setenv("PHOTOPROC_OFFLINE", word)
    assert offline_mode() is offline
