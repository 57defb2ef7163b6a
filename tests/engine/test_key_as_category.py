"""The key field in a second role: `user` is the entity and also a category, so "distinct users per IP"
(novelty of `user` by `ip`) can be said. It used to be refused: "field 'user' is declared twice"."""

import json

import numpy as np
import pyarrow as pa

from tocsin.engine.pipeline import Pipeline
from tocsin.features.featureset import FeatureSet
from tocsin.sources.base import SourceBatch
from tocsin.spec import parse_spec

SPEC = {
    "name": "logins", "source": {"kind": "file", "path": "logins.jsonl"},
    "schema": {"id_field": "id", "key_field": "user", "numeric": ["success"], "categorical": ["user", "ip"]},
    "features": [{"kind": "novelty", "field": "user", "by": "ip"}, {"kind": "window", "windows": ["10m"], "by": "ip"}],
    "detector": {"kind": "robust_zscore", "warmup_events": 100, "train_window": 100, "refit_every": None},
}


def logins():
    # one IP tries 50 users (credential stuffing); the others log in as themselves
    rows = [{"id": f"a{i}", "user": f"u{i % 20}", "ip": f"10.0.0.{i % 20}", "ts": 1_767_571_200.0 + i, "success": True}
            for i in range(200)]
    rows += [{"id": f"s{i}", "user": f"victim{i}", "ip": "203.0.113.9", "ts": 1_767_571_400.0 + i, "success": False}
             for i in range(50)]
    return rows


def test_the_key_field_is_also_a_category_on_every_decode_path():
    spec = parse_spec(SPEC)
    assert FeatureSet.from_spec(spec).names == ["ip.user_novel", "ip.user_seen_count", "ip.user_distinct", "ip.user_share",
                                                "ip.count_10m"]
    rows = logins()
    lines = [json.dumps(r).encode() for r in rows]
    positions = np.arange(len(rows), dtype=np.int64)
    paths = {
        "records": SourceBatch(positions=positions, next_position=len(rows), records=rows),
        "lines": SourceBatch(positions=positions, next_position=len(rows), lines=lines),
        "table": SourceBatch(positions=positions, next_position=len(rows), table=pa.Table.from_pylist(rows)),
    }
    distinct = {}
    for path, raw in paths.items():
        scored = Pipeline(spec).process_raw(raw, source=path)
        assert not scored.dead_letters, scored.dead_letters[:1]
        assert scored.events.categorical["user"].tolist() == [r["user"] for r in rows]
        distinct[path] = scored.features.column("ip.user_distinct")
    assert distinct["records"][-1] == 49 and distinct["records"][199] <= 1, "the stuffing IP has seen 49 other users before its last try"
    np.testing.assert_array_equal(distinct["records"], distinct["lines"])
    np.testing.assert_array_equal(distinct["records"], distinct["table"])


def test_a_rule_over_a_feature_keyed_by_the_ip_flags_credential_stuffing():
    spec = parse_spec({**SPEC, "detector": {"kind": "rules", "params": {"rules": ["ip.user_distinct > 20 and ip.count_10m > 20"]},
                                            "warmup_events": 100, "train_window": 100, "refit_every": None}})
    scored = Pipeline(spec).process_records(logins(), source="api")
    flagged = scored.events.ids[scored.raw_score > 0].tolist()
    assert flagged == [f"s{i}" for i in range(21, 50)], flagged
