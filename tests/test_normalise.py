"""The normaliser: canonical forms, abbreviations, noise words, and its two properties
(idempotent, never raises on any Unicode)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coder.normalise import fold, normalise, split_context, tokens


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Snr. Software Dev", "senior software developer"),
        ("NURSE", "nurse"),
        ("self employed plumber", "plumber"),
        ("Self-Employed Plumber", "plumber"),
        ("p/t cleaner", "cleaner"),
        ("Part Time Part Time Cleaner", "cleaner"),
        ("Co-ordinator, sales", "coordinator sales"),
        ("HGV Driver", "heavy goods vehicle driver"),
        ("Builders' merchant's clerk", "builder merchant clerk"),
        ("IT mgr", "information technology manager"),
        ("Teaching Asst", "teaching assistant"),
        ("Café manager", "cafe manager"),
        ("Linesmen", "linesman"),
        ("Secretaries", "secretary"),
        ("R&D Engineer", "research and development engineer"),
        ("Fish & chip shop", "fish and chip shop"),
        ("Employed as a care asst", "care assistant"),
        ("ENGINEER-DESIGNER", "engineer designer"),
        ("Glass", "glass"),
        ("bus driver", "bus driver"),
        ("Sales assistant", "sales assistant"),
        ("   ", ""),
        ("part time", ""),
    ],
)
def test_canonical_forms(raw, expected):
    assert normalise(raw) == expected


def test_index_and_query_meet_in_the_middle():
    # The index writes "HGV driver"; people write the long form, or abbreviate differently.
    assert normalise("HGV driver") == normalise("heavy goods vehicle driver")
    assert normalise("Co-ordinator") == normalise("coordinator")
    assert normalise("Asst. Mgr") == normalise("assistant manager")


def test_fold_strips_accents_and_case():
    assert fold("ÉCOLE Straße") == "ecole strasse"


@pytest.mark.parametrize(
    "raw, title, context",
    [
        ("NURSE (NHS)", "NURSE", "NHS"),
        ("cleaner at tesco", "cleaner", "tesco"),
        ("Manager [hotel] (part time)", "Manager", "hotel part time"),
        ("plain title", "plain title", ""),
        ("(NHS)", "", "NHS"),
    ],
)
def test_split_context(raw, title, context):
    assert split_context(raw) == (title, context)


def test_non_strings_are_empty():
    assert normalise(None) == ""  # type: ignore[arg-type]
    assert tokens(3.5) == ()  # type: ignore[arg-type]
    assert split_context(None) == ("", "")  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_idempotent_and_never_raises(text):
    once = normalise(text)
    assert isinstance(once, str)
    assert normalise(once) == once
    assert once == once.strip() and "  " not in once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(
    ["mgr", "asst", "snr", "part", "time", "p/t", "nurse", "co-ordinator", "HGV", "&", "it",
     "self", "employed", "builders'", "Café", "(NHS)", "ENG", "r&d", "sales", "-", "men"]
), max_size=8))
def test_idempotent_on_job_title_vocabulary(words):
    text = " ".join(words)
    assert normalise(normalise(text)) == normalise(text)
