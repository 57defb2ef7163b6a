import pytest
from hypothesis import given, settings

from tocsin.features.value import ValueFeature

from .reference import RefValue
from .streams import check_operator, cuts, streams


@pytest.mark.parametrize("log", [False, True])
@settings(max_examples=30, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(log, events, sizes):
    check_operator(lambda: ValueFeature("amount", log=log), lambda: RefValue("amount", log), events, sizes)
