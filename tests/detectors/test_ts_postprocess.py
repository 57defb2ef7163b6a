"""Stream post-processing: surprise calibration, anomaly likelihood and alarm suppression against plain references."""

import math

import numpy as np
import pytest

from tocsin.detectors.postprocess import AlarmSuppressor, AnomalyLikelihood, EchoDamper, TailSurprise, surprise_to_unit


def _tail_surprise_reference(raw, window, q, warmup):
    out = []
    past: list[float] = []
    for r in raw:
        if len(past) >= warmup:
            ref = np.sort(past)
            s_q = np.quantile(ref, q)
            if r < s_q:
                cdf = min((np.sum(ref < r) + np.sum(ref <= r)) / (2 * ref.size), q)
                out.append(-math.log10(1 - cdf))
            else:
                excess = ref[ref > s_q] - s_q
                beta = max(excess.mean() if excess.size else 0.0, 1e-9 * max(abs(s_q), 1.0))
                out.append(-math.log10(1 - q) + (r - s_q) / beta / math.log(10))
        else:
            out.append(0.0)
        past = (past + [r])[-window:]
    return np.array(out)


def _likelihood_reference(raw, history, short, warmup, min_std):
    out, averages = [], []
    for i in range(raw.size):
        average = raw[max(0, i - short + 1) : i + 1].mean()
        value = 0.0
        if len(averages) >= warmup:
            mean = np.mean(averages)
            std = max(np.sqrt(max(np.mean(np.square(averages)) - mean**2, 0.0)), min_std)
            z = (average - mean) / std
            if z > 0:
                value = -math.log10(max(0.5 * math.erfc(z / math.sqrt(2)), 1e-300))
        out.append(value)
        averages = (averages + [average])[-history:]
    return np.array(out)


def test_tail_surprise_matches_a_plain_reference_with_ties_and_eviction():
    rng = np.random.default_rng(0)
    raw = np.round(rng.exponential(size=700), 1)  # many ties
    raw[650] = 12.0
    calibrator = TailSurprise(window=200, tail_quantile=0.9, warmup=30)
    got = np.concatenate([calibrator.process(raw[:333]), calibrator.process(raw[333:])])
    np.testing.assert_allclose(got, _tail_surprise_reference(raw, 200, 0.9, 30), rtol=1e-9, atol=1e-12)
    assert got.argmax() == 650


def test_tail_surprise_does_not_learn_when_told_not_to():
    calibrator = TailSurprise(window=50, warmup=10)
    calibrator.process(np.arange(40.0))
    state = calibrator.state_dict()
    first = calibrator.process(np.array([100.0, 100.0]), learn=False)
    assert first[0] == first[1]
    for name, value in calibrator.state_dict().items():
        np.testing.assert_array_equal(value, state[name])


def test_tail_surprise_grows_without_saturating_and_ignores_nan():
    calibrator = TailSurprise(window=500, warmup=100)
    calibrator.process(np.random.default_rng(1).normal(size=500))
    surprise = calibrator.process(np.array([3.0, 6.0, 12.0, np.nan]), learn=False)
    assert surprise[0] < surprise[1] < surprise[2]
    assert surprise[3] == 0.0


def test_anomaly_likelihood_matches_a_plain_reference():
    rng = np.random.default_rng(2)
    raw = rng.uniform(size=400)
    raw[300:306] = 3.0
    likelihood = AnomalyLikelihood(history=120, short_window=5, warmup=40, min_std=1e-3)
    got = np.concatenate([likelihood.process(raw[:77]), likelihood.process(raw[77:])])
    np.testing.assert_allclose(got, _likelihood_reference(raw, 120, 5, 40, 1e-3), rtol=1e-7, atol=1e-9)
    assert 300 <= got.argmax() <= 306


def test_alarm_suppressor_keeps_the_first_alarm_and_damps_echoes():
    burst = np.zeros(400)
    burst[100:110] = 6.0
    burst[350] = 6.0  # a new event, 240 rows (2.4 half-lives) later
    out = AlarmSuppressor(halflife=100, gamma=0.5).process(burst)
    assert out[100] == 6.0
    assert (out[101:110] == 3.0).all()  # echoes: 6 - 0.5 x 6
    assert 3.0 < out[350] < 6.0
    assert AlarmSuppressor(gamma=0.0).process(burst).tolist() == burst.tolist()


def test_alarm_suppressor_batch_equals_row_by_row():
    surprise = np.abs(np.random.default_rng(3).standard_cauchy(500))
    whole = AlarmSuppressor(halflife=20).process(surprise)
    stepper = AlarmSuppressor(halflife=20)
    np.testing.assert_array_equal(whole, np.concatenate([stepper.process(surprise[i : i + 1]) for i in range(500)]))


def test_echo_damper_keeps_the_first_alarm_and_damps_echoes_by_their_new_share():
    burst = np.zeros(400)
    burst[100:110] = 6.0
    burst[350] = 6.0  # a new event, 240 rows (2.4 half-lives) later
    out = EchoDamper(halflife=100).process(burst)
    assert out[100] == 6.0
    np.testing.assert_allclose(out[101:110], 3.0)  # an echo as large as the alarm keeps half: 6 x 6 / (6 + 6)
    assert 3.0 < out[350] < 6.0  # the envelope has decayed to about 1.1: most of the new event passes
    higher = EchoDamper(halflife=100).process(np.array([6.0, 12.0, 2.0]))
    assert higher[1] == 12.0 * 12.0 / 18.0 and higher[2] < 0.5  # a larger event keeps most, a small echo little


def test_echo_damper_batch_equals_row_by_row():
    surprise = np.abs(np.random.default_rng(3).standard_cauchy(500))
    whole = EchoDamper(halflife=20).process(surprise)
    stepper = EchoDamper(halflife=20)
    np.testing.assert_array_equal(whole, np.concatenate([stepper.process(surprise[i : i + 1]) for i in range(500)]))


def test_surprise_to_unit_is_monotone_into_unit_interval():
    s = np.array([0.0, 1.0, 10.0, 1e6, -3.0])
    unit = surprise_to_unit(s)
    assert unit.tolist()[:3] == [0.0, 1 / 11, 0.5] and 0.999 < unit[3] < 1.0 and unit[4] == 0.0


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"tail_quantile": 1.0}, {"warmup": 5000}])
def test_tail_surprise_validates(kwargs):
    with pytest.raises(ValueError):
        TailSurprise(**kwargs)


def test_conformal_tail_never_claims_more_than_its_reference_supports():
    from tocsin.detectors.postprocess import ConformalTail

    rng = np.random.default_rng(0)
    raw = rng.standard_cauchy(size=(3000, 2))
    raw[::500, 0] = 1e12  # absurd raw scores early and late
    surprise = ConformalTail(window=500).process(raw)
    sizes = np.minimum(np.arange(3000), 500)[:, None]
    assert (surprise[:10] == 0).all()
    assert (surprise <= 2 * np.log10(sizes + 1) + 1e-12).all()
    # columns are calibrated independently
    alone = ConformalTail(window=500).process(raw[:, 1].copy())
    np.testing.assert_array_equal(alone[:, 0], surprise[:, 1])
