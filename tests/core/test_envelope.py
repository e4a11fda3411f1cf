"""The envelope's wire forms: what one worker version writes, another reads."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from stream.core.envelope import KINDS, Envelope

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=8))
envelopes = st.builds(
    Envelope,
    kind=st.sampled_from(KINDS),
    account_id=st.text(max_size=12),
    user_id=st.text(max_size=12),
    ts=st.integers(0, 2**45),
    lane=st.text(max_size=12),
    offset=st.integers(0, 2**40),
    index=st.integers(-1, 1000),
    sub=st.integers(0, 100),
    message_id=st.one_of(st.none(), st.text(max_size=12)),
    event=st.one_of(st.none(), st.text(max_size=12)),
    props=st.dictionaries(st.text(max_size=6), scalars, max_size=4),
    traits=st.dictionaries(st.text(max_size=6), scalars, max_size=4),
    lm=st.integers(0, 2**45),
    raw=st.one_of(st.none(), st.text(max_size=20)),
)


@given(envelopes)
def test_the_row_form_carries_every_field_through_json(env: Envelope) -> None:
    assert Envelope.from_wire(orjson.loads(orjson.dumps(env.to_row()))) == env


@given(envelopes)
def test_the_named_form_of_earlier_versions_still_reads(env: Envelope) -> None:
    assert Envelope.from_wire(orjson.loads(orjson.dumps(env.to_dict()))) == env


def test_the_row_lists_the_fields_in_declaration_order() -> None:
    env = Envelope("track", "a", "u", 5, "d:t:0", 7, 2, 1, "m", "e", {"p": 1}, {"t": 2}, 9, "{}")
    assert list(env.to_row()) == [getattr(env, name) for name in Envelope.__dataclass_fields__]
