"""Ids: the OpenAI shapes, unguessable, and in the order they were made."""

from __future__ import annotations

import re
import time

from app.protocol.ids import new_call_id, new_id, new_item_id

ID_SHAPE = re.compile(r"^(resp|msg|fc|rs|call|conv)_[0-9a-f]{48}$")


def test_ids_have_a_prefix_and_48_hex_digits():
    for made in (new_id("resp"), new_id("conv"), new_item_id("message"), new_call_id()):
        assert ID_SHAPE.match(made), made
    assert new_item_id("function_call").startswith("fc_")
    assert new_item_id("reasoning").startswith("rs_")
    assert new_item_id("something_new").startswith("item_")


def test_ids_made_later_sort_later():
    made = []
    for _ in range(50):
        made.append(new_id("resp"))
        time.sleep(0.000_01)
    assert made == sorted(made)


def test_ids_start_with_the_time_they_were_made():
    before = time.time_ns() // 1000
    made_at = int(new_id("resp")[5:18], 16)
    after = time.time_ns() // 1000
    assert before <= made_at <= after


def test_ids_made_at_once_differ_in_their_random_part():
    made = {new_id("msg") for _ in range(10_000)}
    assert len(made) == 10_000
    randoms = {made_id[-35:] for made_id in made}
    assert len(randoms) == 10_000
