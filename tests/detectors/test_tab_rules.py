"""Rules: whitelisted expressions evaluated on columns."""

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, Detector, NotFittedError
from tocsin.detectors.rules import RuleError, Rules, parse_rule

FEATURES = ["amount", "city_novel", "count_1m"]
X = np.array(
    [
        [50.0, 0.0, 1.0],
        [12_000.0, 1.0, 2.0],
        [12_000.0, 0.0, 30.0],
        [np.nan, 1.0, 0.0],
    ]
)


def test_registered():
    assert DETECTORS["rules"] is Rules


def test_scores_are_fired_weights_and_planted_row_ranks_first():
    detector = Rules(
        ["amount > 10000 and city_novel == 1", "count_1m > 20", "not (amount <= 10000)"],
        features=FEATURES,
        weights=[3.0, 1.0, 0.5],
    ).fit(X)
    np.testing.assert_allclose(detector.score_samples(X), [0.0, 3.5, 1.5, 0.5])
    # NaN never fires a comparison, but "not (NaN <= 10000)" is true: the rule says so.
    assert detector.score_samples(X).argmax() == 1


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("10 < count_1m <= 30", [0, 0, 1, 0]),
        ("abs(log1p(amount) - 9) < 1", [0, 1, 1, 0]),
        ("count_1m in (1, 2)", [1, 1, 0, 0]),
        ("count_1m not in (1, 2) and city_novel", [0, 0, 0, 1]),
        ("max(count_1m, city_novel * 5) >= 5 or -amount < -20000", [0, 1, 1, 1]),
        ("isnan(amount)", [0, 0, 0, 1]),
        ("amount / count_1m > 5000 or count_1m % 2 == 1", [1, 1, 0, 0]),
    ],
)
def test_whitelisted_syntax(rule, expected):
    detector = Rules(rule, features=FEATURES).fit()
    np.testing.assert_array_equal(detector.score_samples(X), expected)


@pytest.mark.parametrize(
    "rule, message",
    [
        ("__import__('os').system('true')", "calls may only name"),
        ("amount.__class__", "only a feature keyed by a field may be named with a dot"),
        ("ip.count_10m.real > 1", "only a feature keyed by a field may be named with a dot"),
        ("amount[0] > 1", "Subscript"),
        ("(lambda: 1)()", "calls may only name"),
        ("amount > 'x'", "numeric constants"),
        ("amount if city_novel else 0", "IfExp"),
        ("amount > ", "not a valid expression"),
        ("[x for x in amount]", "ListComp"),
        ("amount in (city_novel,)", "literal tuple"),
        ("abs", "function, not a column"),
    ],
)
def test_unsafe_or_invalid_rules_are_rejected(rule, message):
    with pytest.raises(RuleError, match=message):
        parse_rule(rule)


def test_columns_from_fit_time_names_and_unknown_columns():
    columns = {name: X[:, i] for i, name in enumerate(FEATURES)}
    detector = Rules(["count_1m > 20"]).fit(columns)
    assert detector.features_.tolist() == FEATURES
    np.testing.assert_array_equal(detector.score_samples(columns), [0, 0, 1, 0])
    np.testing.assert_array_equal(detector.score_samples(X), [0, 0, 1, 0])
    with pytest.raises(RuleError, match="unknown column"):
        Rules(["speed > 1"], features=FEATURES).fit()
    with pytest.raises(ValueError, match="column names"):
        Rules(["count_1m > 20"]).fit(X)


def test_explain_shares_each_fired_rule_among_its_columns():
    detector = Rules(["amount > 10000 and city_novel == 1"], features=FEATURES).fit()
    np.testing.assert_allclose(detector.explain(X[[1, 2]]), [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])


def test_save_load_gives_identical_scores(tmp_path):
    detector = Rules(["amount > 10000", "count_1m > 20"], features=FEATURES, weights=[2.0, 1.0]).fit()
    detector.save(tmp_path / "rules.npz")
    loaded = Detector.load(tmp_path / "rules.npz")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))


def test_not_fitted_and_bad_params():
    with pytest.raises(NotFittedError):
        Rules(["amount > 1"], features=FEATURES).score_samples(X)
    with pytest.raises(ValueError, match="at least one rule"):
        Rules([], features=FEATURES).fit()
    with pytest.raises(ValueError, match="weights"):
        Rules(["amount > 1"], features=FEATURES, weights=[1.0, 2.0]).fit()


def test_a_rule_reads_features_keyed_by_another_field():
    """`ip.count_10m > 30 and ip.failed_mean_10m > 0.5` was refused ("Attribute is not allowed")."""
    columns = {"ip.count_10m": np.array([5.0, 40.0, 40.0]), "ip.failed_mean_10m": np.array([0.9, 0.9, 0.1])}
    detector = Rules("ip.count_10m > 30 and ip.failed_mean_10m > 0.5").fit(columns)
    assert detector.score_samples(columns).tolist() == [0.0, 1.0, 0.0]
