"""Label records: what is accepted, and the field each refusal names (no broker needed)."""

from __future__ import annotations

import pytest

from tocsin.kafka.labels import LabelError, decode_label

FIELDS = ["card_id", "merchant_id"]


@pytest.mark.parametrize(("raw", "named"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "one JSON object"),
    (b'{"card_id": "c1", "merchant_id": "m1", "label": "maybe"}', "label:"),
    (b'{"card_id": "c1", "label": 1}', "merchant_id:"),
    (b'{"card_id": "", "merchant_id": "m1", "label": 1}', "card_id:"),
    (b'{"card_id": "c1", "merchant_id": "m1", "label": 1, "known_at": "yesterday"}', "known_at:"),
    (b'{"card_id": "c1", "merchant_id": "m1", "label": 1}', "known_at:"),  # no known_at and no timestamp
])
def test_a_label_tocsin_cannot_apply_names_the_field(raw, named) -> None:
    with pytest.raises(LabelError, match=named):
        decode_label(raw, FIELDS, None)


def test_verdict_spellings_and_the_kafka_timestamp() -> None:
    for verdict, expected in (("true_positive", 1), ("false_positive", 0), (True, 1), (0, 0), ("1", 1)):
        raw = b'{"card_id": "c1", "merchant_id": "m1", "label": %s}' % (b'"%s"' % verdict.encode() if isinstance(verdict, str)
                                                                        else str(verdict).lower().encode())
        assert decode_label(raw, FIELDS, 12.5) == ({"card_id": "c1", "merchant_id": "m1"}, expected, 12.5)
