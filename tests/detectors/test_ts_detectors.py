"""What each time-series detector catches (and what it is built to ignore), on small synthetic streams."""

import numpy as np

from tocsin.detectors.ewma import EWMAZScore
from tocsin.detectors.forecast import SeasonalForecast
from tocsin.detectors.seasonal import AutoSeasonalProfile, SeasonalProfile
from tocsin.detectors.timeseries import TimeSeriesDetector, ValueRarity

HOUR = 3600


def _daily(days=14, per_hour=4, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    seconds = np.arange(days * 24 * per_hour) * (HOUR // per_hour)
    values = 100 + 40 * np.sin(2 * np.pi * seconds / 86_400) + rng.normal(0, noise, seconds.size)
    return values, seconds


def test_ewma_follows_drift_but_flags_a_spike():
    rng = np.random.default_rng(0)
    series = np.linspace(0, 50, 2000) + rng.normal(0, 1, 2000)  # a ramp of 50 sd
    series[1500] += 10
    scores = EWMAZScore(alpha=0.05).score_partial_fit(series)
    assert scores.argmax() == 1500
    assert np.percentile(scores[100:], 99) < 4  # the ramp itself is not alarming


def test_ewma_variance_matches_the_exponential_recursion():
    x = np.array([1.0, 3.0, 2.0, 8.0])
    detector = EWMAZScore(alpha=0.5, warmup=1).fit(x)
    mean, var = x[0], 0.0
    for value in x[1:]:
        delta = value - mean
        mean += 0.5 * delta
        var = 0.5 * (var + 0.5 * delta * delta)
    assert detector.mean_[0] == mean and detector.var_[0] == var


def test_seasonal_profile_flags_a_value_normal_for_the_day_but_not_for_the_hour():
    values, seconds = _daily()
    values[12 * 96 + 72] = 100.0  # 18:00, the daily trough (~60): the daily mean at the wrong hour
    scores = SeasonalProfile(n_buckets=24).score_partial_fit(values, timestamps=seconds)
    ewma = EWMAZScore().score_partial_fit(values)
    assert scores.argmax() == 12 * 96 + 72
    assert scores[12 * 96 + 72] > 10
    # the EWMA, blind to the season, sees nothing special there
    assert ewma[12 * 96 + 72] < np.percentile(ewma[200:], 99.9)


def test_auto_seasonal_needs_no_period_for_a_daily_or_a_twelve_hour_pattern():
    for period in (86_400, 43_200):
        rng = np.random.default_rng(1)
        seconds = np.arange(14 * 24 * 4) * (HOUR // 4)
        values = 100 + 40 * np.sin(2 * np.pi * seconds / period) + rng.normal(0, 1.0, seconds.size)
        trough = 12 * 96 + int(0.75 * period / (HOUR // 4))  # a trough of the pattern on day 12
        values[trough] = 100.0  # the series' mean, at the hour of its low
        scores = AutoSeasonalProfile().score_partial_fit(values, timestamps=seconds)
        assert scores.argmax() == trough and scores[trough] > 10
        # from the second day on (the first fills the buckets), nothing else comes close
        assert np.percentile(scores[96:], 99.5) < 5


def test_auto_seasonal_learns_weekends_from_the_week_profile():
    rng = np.random.default_rng(2)
    seconds = np.arange(6 * 7 * 24) * HOUR  # six weeks, hourly, starting on a Thursday (1970-01-01)
    weekend = np.isin((seconds // 86_400 + 3) % 7, (5, 6))
    values = np.where(weekend, 20.0, 100.0) + rng.normal(0, 1.0, seconds.size)
    saturday = 5 * 7 * 24 + 2 * 24 + 12  # noon of the last Saturday
    values[saturday] = 100.0  # a weekday's level on a Saturday
    scores = AutoSeasonalProfile().score_partial_fit(values, timestamps=seconds)
    # the first weekend is news (nothing has seen one); from the third week on only the odd Saturday is
    assert 2 * 7 * 24 + scores[2 * 7 * 24 :].argmax() == saturday and scores[saturday] > 10
    # once the week's hourly buckets hold three values (three weeks of hourly data), weekends are
    # ordinary: the week's profile has predicted the series better and explains them
    later_weekends = weekend & (np.arange(seconds.size) >= 4 * 7 * 24)
    later_weekends[saturday] = False
    assert scores[later_weekends].max() < 5
    # the daily profile alone (no week) mixes weekdays and weekends into one wide spread: blind to it
    daily = SeasonalProfile(n_buckets=24).score_partial_fit(values, timestamps=seconds)
    assert daily[saturday] < 2


def test_auto_seasonal_on_noise_is_a_plain_z_score():
    rng = np.random.default_rng(3)
    seconds = np.arange(4000) * 300
    values = rng.normal(10.0, 2.0, seconds.size)
    scores = AutoSeasonalProfile().score_partial_fit(values, timestamps=seconds)
    assert np.percentile(scores[500:], 99) < 3.5  # |z| of Gaussian noise, and the lower of two profiles
    values[3000] = 30.0  # ten standard deviations
    assert AutoSeasonalProfile().score_partial_fit(values, timestamps=seconds).argmax() == 3000


def test_seasonal_buckets_use_time_of_period():
    detector = SeasonalProfile(period=86_400, n_buckets=24)
    stamps = np.array(["2024-01-01T00:00", "2024-01-01T13:59", "2024-01-02T23:30"], dtype="datetime64[m]")
    assert detector.bucket_of(stamps).tolist() == [0, 13, 23]


def test_forecast_absorbs_a_level_shift_but_flags_the_shape_break():
    values, seconds = _daily(days=21)
    values[15 * 96 :] += 30  # the whole series moves up and stays there
    scores = SeasonalForecast(n_buckets=24).score_partial_fit(values, timestamps=seconds)
    assert scores[15 * 96 : 15 * 96 + 4].max() > 5  # the shift is news when it happens
    assert np.percentile(scores[17 * 96 :], 99) < 5  # and the new level is learned within a day or two


def test_value_rarity_flags_a_new_level_not_the_old_modes():
    rng = np.random.default_rng(4)
    modes = np.where(rng.uniform(size=3000) < 0.5, 0.0, 10.0) + rng.normal(0, 0.3, 3000)
    modes[2500:2520] = 5.0  # between the modes: near the mean, but never seen
    scores = ValueRarity().score_partial_fit(modes)
    assert scores[2500] > np.percentile(scores[200:2500], 99.5)


def test_timeseries_detector_alarms_once_per_event():
    values, seconds = _daily(days=21, noise=2.0)
    values[16 * 96 + 20 : 16 * 96 + 60] = values[16 * 96 + 20]  # stuck sensor for 10 hours
    scores = TimeSeriesDetector().score_partial_fit(values, timestamps=seconds)
    event = slice(16 * 96 + 20, 16 * 96 + 60)
    # after the warm-up (the seasonal buckets fill in three days) nothing scores as high as the stall
    assert scores[event].max() > scores[3 * 96 : 16 * 96 + 20].max()
    assert ((scores > 0.5 * scores[event].max())[16 * 96 + 60 :]).sum() <= 5
    assert (scores >= 0).all() and (scores < 1).all()


def test_rarity_bins_follow_the_memory_by_rices_rule_on_the_effective_count():
    from tocsin.detectors.timeseries import rarity_bins

    memory = 4000.0
    weights = (1.0 - 1.0 / memory) ** np.arange(200_000)  # the decayed counts' weights by age
    effective = weights.sum() ** 2 / (weights**2).sum()  # Kish's effective number of values
    assert abs(effective - (2 * memory - 1)) < 1e-6 * memory
    assert rarity_bins(memory) == int(np.ceil(2 * effective ** (1 / 3) - 1e-9)) == 40
    assert [rarity_bins(m) for m in (1000.0, 2000.0, 8000.0)] == [26, 32, 51]  # no knob of its own
