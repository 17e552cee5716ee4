"""A source's events have two names; the rule engine, the config and the routing agree on them."""

from __future__ import annotations

import pytest

from mqferry._rules.source_names import aliases, canonical, source_id
from mqferry._runtime.routing import event_aliases


@pytest.mark.parametrize("name", ["$bridges/kafka_consumer:in", "$sources/kafka_consumer:in"])
def test_both_spellings_name_the_same_source(name):
    assert source_id(name) == "kafka_consumer:in"
    assert canonical(name) == "$sources/kafka_consumer:in"
    assert aliases(name)[0] == name
    assert set(aliases(name)) == {"$bridges/kafka_consumer:in", "$sources/kafka_consumer:in"}
    assert event_aliases(name) == aliases(name)


@pytest.mark.parametrize("name", ["t/1", "$events/client_connected", "$SYS/x", "$bridge/x:y"])
def test_other_names_are_themselves(name):
    assert source_id(name) is None
    assert canonical(name) == name
    assert aliases(name) == (name,)
