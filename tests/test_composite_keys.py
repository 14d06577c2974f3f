"""Join keys, filter splitting and the access rules of linked and union collections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.catalogue.registration import SourceRegistration
from hub.composite.exposure import access_problem, shown_protected
from hub.composite.expressions import conjuncts, members_named, null_rejecting, split_name, strip_member
from hub.composite.keys import KeyFormat, key_forms, normalise_key, preferred_first
from hub.composite.settings import LinkedSettings, UnionSettings
from hub.features.cql import compile_predicate, parse_filter

PAND = "0503100000025473"


@pytest.mark.parametrize(
    "value",
    [PAND, f"NL.IMBAG.Pand.{PAND}", f"nl.imbag.pand.{PAND}", f"  {PAND} ", int(PAND)],
)
def test_every_form_of_a_bag_id_normalises_to_its_16_digits(value: object) -> None:
    assert normalise_key(value, KeyFormat.BAG) == PAND


def test_keys_that_are_no_bag_ids_stay_as_they_are_and_nulls_are_no_keys() -> None:
    assert normalise_key(f"NL.IMBAG.Pand.{PAND}-0", KeyFormat.BAG) == f"NL.IMBAG.Pand.{PAND}-0"
    assert normalise_key("050310000002547", KeyFormat.BAG) == "050310000002547"  # 15 digits
    for nothing in (None, "", "  ", True, [PAND], {"id": PAND}):
        assert normalise_key(nothing, KeyFormat.BAG) is None
    # text keys: only white space is ignored
    assert normalise_key(f" NL.IMBAG.Pand.{PAND} ", KeyFormat.TEXT) == f"NL.IMBAG.Pand.{PAND}"
    assert normalise_key(PAND, KeyFormat.TEXT) != normalise_key(f"NL.IMBAG.Pand.{PAND}", KeyFormat.TEXT)


def test_a_member_is_asked_for_every_form_its_field_can_hold() -> None:
    assert key_forms(PAND, KeyFormat.BAG, "string") == [PAND, f"NL.IMBAG.Pand.{PAND}"]
    assert key_forms(PAND, KeyFormat.BAG, None) == [PAND, f"NL.IMBAG.Pand.{PAND}"]
    assert key_forms(PAND, KeyFormat.BAG, "integer") == [int(PAND)]
    verblijfsobject = "0363010000758545"
    assert (
        key_forms(verblijfsobject, KeyFormat.BAG, "string")[1]
        == f"NL.IMBAG.Verblijfsobject.{verblijfsobject}"
    )
    assert key_forms("abc", KeyFormat.TEXT, "integer") == []
    assert key_forms("42", KeyFormat.TEXT, "integer") == [42]
    assert preferred_first(["a", "b", "c"], 2) == ["c", "a", "b"]
    assert preferred_first(["a", "b"], None) == ["a", "b"]


def test_a_filter_is_taken_apart_by_member() -> None:
    node = parse_filter(
        "bag:bouwjaar < 1900 AND \"bag3d:h_dak_max\" > 10 AND (monument:naam LIKE 'A%' OR bag:status = 'x')",
        None,
    )
    terms = conjuncts(node)
    assert [members_named(t) for t in terms] == [{"bag"}, {"bag3d"}, {"monument", "bag"}]
    assert split_name("bag3d:h_dak_max") == ("bag3d", "h_dak_max")
    assert split_name("geometry") is None
    stripped = strip_member(terms[1])
    feature = {"type": "Feature", "geometry": None, "properties": {"h_dak_max": 12.5}}
    assert compile_predicate(stripped)(feature)


@pytest.mark.parametrize(
    ("text", "rejects_nulls"),
    [
        ("m:x = 5", True),
        ("m:x < 5", True),
        ("m:x BETWEEN 1 AND 5", True),
        ("m:x LIKE 'a%'", True),
        ("m:x IN (1, 2)", True),
        ("m:x IS NOT NULL", True),
        ("m:x = 1 OR m:x = 2", True),
        ("m:x <> 5", False),
        ("m:x NOT IN (1, 2)", False),
        ("m:x IS NULL", False),
        ("NOT m:x = 5", False),
        ("m:x = 1 OR m:x IS NULL", False),
    ],
)
def test_null_rejecting_terms_are_exactly_those_false_for_a_feature_without_match(
    text: str, rejects_nulls: bool
) -> None:
    node = parse_filter(text, None)
    assert null_rejecting(node) is rejects_nulls
    unmatched = {"type": "Feature", "geometry": None, "properties": {"m:x": None}}
    if rejects_nulls:
        assert not compile_predicate(node)(unmatched)


def _registration(**keys: object) -> SourceRegistration:
    return SourceRegistration.model_validate({"title": "t", "connector": "file", "path": "x", **keys})


def test_a_composite_never_admits_callers_a_member_refuses() -> None:
    open_member = _registration(id="a", classification="open")
    internal = _registration(id="b", classification="internal", access={"roles": ["gis"]})
    assert access_problem(_registration(id="c", classification="open"), open_member) is None
    assert "more strictly" in (access_problem(_registration(id="c", classification="open"), internal) or "")
    same = _registration(id="c", classification="internal", access={"roles": ["gis"]})
    assert access_problem(same, internal) is None
    wider = _registration(id="c", classification="internal", access={"roles": ["gis", "everyone"]})
    assert "everyone" in (access_problem(wider, internal) or "")


def test_a_protected_member_property_is_carried_only_when_the_composite_protects_it_as_strictly() -> None:
    protection = {"classification": "personal", "roles": ["bgt"], "activities": ["handhaving"]}
    member = _registration(id="m", classification="open", protected_fields={"eigenaar": protection})
    rename = {"eigenaar": "m:eigenaar"}
    bare = _registration(id="c", classification="open")
    assert shown_protected(bare, member, rename) == frozenset()
    strict = _registration(id="c", classification="open", protected_fields={"m:eigenaar": protection})
    assert shown_protected(strict, member, rename) == {"eigenaar"}
    looser = {**protection, "roles": ["bgt", "iedereen"]}
    loose = _registration(id="c", classification="open", protected_fields={"m:eigenaar": looser})
    assert shown_protected(loose, member, rename) == frozenset()


def test_settings_refuse_members_that_would_share_a_name() -> None:
    with pytest.raises(ValidationError, match="member names must differ"):
        LinkedSettings.model_validate(
            {"members": [{"collection": "a", "key": "id"}, {"collection": "a", "key": "id"}]}
        )
    with pytest.raises(ValidationError):
        LinkedSettings.model_validate({"members": [{"collection": "a", "key": "id"}]})
    with pytest.raises(ValidationError):
        UnionSettings.model_validate({"members": [{"collection": "a"}, {"collection": "b", "name": "b:c"}]})
    settings = LinkedSettings.model_validate(
        {
            "members": [
                {"collection": "bag-pand", "key": "identificatie", "name": "bag"},
                {"collection": "x", "key": "id"},
            ]
        }
    )
    assert settings.primary.label == "bag" and settings.on_member_error == "partial"
