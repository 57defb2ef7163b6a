"""Compiled per-event kernels behind the feature operators, and the growth of their state arrays.

Every kernel is one sequential loop over a batch's rows in arrival order. For
row ``i`` with key id ``k`` it reads the state of ``k`` (built by strictly
earlier rows, in this batch or earlier ones), writes the row's features, then
folds the row into the state of ``k``. State lives in dense arrays indexed by
key id and is mutated in place, so cutting a stream into batches differently
gives bit-identical results.

Time rule shared by all kernels: a late event (time before its key's last seen
time) is treated as happening at the key's last time, so decays never run
backwards (``dt = max(0, t - last)``), recency is 0, window queues stay sorted
by time, and ``last = max(last, t)``. A key with no history has
``last = -inf``.

Speed: with many keys a batch's state rows are cold (other operators and
the key interning evict them between calls) and each event would wait for
its rows one after another, since a kernel iteration is too long for the CPU
to run several ahead. So each kernel first *touches* the rows of the batch's
keys in a tight loop of independent loads, where the cache misses overlap,
and then runs the real loop on a warm cache (about 2x faster on 100k keys).
The touch pass has no effect on results.

The Python side (the operators) must grow the arrays before a call: per-key
arrays to ``max(key id) + 1`` rows, the window node pool to room for one node
per row, the novelty hash table to a load of at most 1/2 after the batch.
Kernels never allocate or check bounds.

Compiled with ``cache=True``: the first call in a fresh environment compiles
(a few seconds); later processes load the machine code from ``__pycache__``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LN2 = math.log(2.0)
NO_NODE = -1
EMPTY_SLOT = -1


def grow(array: np.ndarray, size: int, fill) -> np.ndarray:
    """``array`` with at least ``size`` rows (axis 0), new rows set to ``fill``
    (a scalar, or one value per column).

    Capacity at least doubles on growth so that growing one key at a time
    costs amortised O(1) per key.

    >>> grow(np.zeros(2), 3, -1.0).tolist()
    [0.0, 0.0, -1.0, -1.0]
    """
    capacity = array.shape[0]
    if size <= capacity:
        return array
    new_capacity = max(size, 2 * capacity, 16 if capacity == 0 else 0)
    grown = np.full((new_capacity, *array.shape[1:]), fill, dtype=array.dtype)
    grown[:capacity] = array
    return grown


# --- sliding windows ------------------------------------------------------------
#
# Per-key state is packed in rows so that an event touches few cache lines:
# with ``n`` windows, ``key_ints[k] = [tail, start_0..start_n-1, count_0..count_n-1]``
# and ``key_floats[k] = [last_time, sum_0..sum_n-1]``. With many keys the batch's
# keys are cold in cache, and one line per row instead of one per array is
# most of the cost.

TAIL = 0
LAST = 0


@njit(cache=True, inline="always")
def _touch_rows(key_ids, rows):
    """Load the first and last element of each key's row (see "Speed" above)."""
    last = rows.shape[1] - 1
    total = rows[0, 0] - rows[0, 0]
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        total += rows[k, 0] + rows[k, last]
    return total


@njit(cache=True, inline="always")
def _touch(key_ids, values):
    total = values[0] - values[0]
    for i in range(key_ids.shape[0]):
        total += values[key_ids[i]]
    return total


@njit(cache=True, nogil=True)
def window_update(
    key_ids, times, values, windows, order,
    key_ints, key_floats,
    node_time, node_value, node_next, pool,
    out_count, out_sum,
):  # fmt: skip
    """Exact sliding-window counts and sums over one linked FIFO queue per key.

    One node per event (time, value) in a pool shared by all keys; the start
    of window ``w`` is the oldest node of the key still inside it, and the
    count and sum cover the nodes from there to the tail. Windows are advanced
    in ``order`` (largest last): nodes leaving the largest window leave every
    window and go back to the free list ``pool[0]``; ``pool[1]`` is the first
    never-used node.
    """
    n_windows = windows.shape[0]
    largest = order[n_windows - 1]
    warm = _touch_rows(key_ids, key_floats)
    for i in range(key_ids.shape[0]):
        for w in range(n_windows):
            node = key_ints[key_ids[i], 1 + w]
            if node != NO_NODE:
                warm += node_time[node] + node_value[node] + node_next[node]
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        ints = key_ints[k]
        floats = key_floats[k]
        t = times[i]
        if t < floats[LAST]:
            t = floats[LAST]
        else:
            floats[LAST] = t
        x = values[i]
        for j in range(n_windows):
            w = order[j]
            cutoff = t - windows[w]
            node = ints[1 + w]
            count = ints[1 + n_windows + w]
            total = floats[1 + w]
            while node != NO_NODE and node_time[node] <= cutoff:
                count -= 1
                total -= node_value[node]
                following = node_next[node]
                if w == largest:
                    node_next[node] = pool[0]
                    pool[0] = node
                node = following
            if count == 0:
                total = 0.0  # no drift left over from adding and removing
            ints[1 + w] = node
            ints[1 + n_windows + w] = count
            floats[1 + w] = total
            out_count[i, w] = count
            out_sum[i, w] = total
        if ints[1 + largest] == NO_NODE:
            ints[TAIL] = NO_NODE
        node = pool[0]
        if node != NO_NODE:
            pool[0] = node_next[node]
        else:
            node = pool[1]
            pool[1] += 1
        node_time[node] = t
        node_value[node] = x
        node_next[node] = NO_NODE
        if ints[TAIL] != NO_NODE:
            node_next[ints[TAIL]] = node
        ints[TAIL] = node
        for w in range(n_windows):
            if ints[1 + w] == NO_NODE:
                ints[1 + w] = node
            ints[1 + n_windows + w] += 1
            floats[1 + w] += x
    return warm


# --- decayed mean and variance ------------------------------------------------
#
# ``state[k] = [last_time, weight, mean, m2]``

WEIGHT = 1
MEAN = 2
M2 = 3


@njit(cache=True, nogil=True)
def decayed_stats_update(
    key_ids, times, values, half_life, state,
    out_zscore, out_ratio, out_mean, out_std, out_weight,
):  # fmt: skip
    """Exponentially decayed weight, mean and variance (weighted West update).

    With ``a = 2**(-dt / half_life)``: ``W' = aW + 1``, ``M' = M + (x - M) / W'``,
    ``S' = aS + (x - M)(x - M')``; the variance is ``S / W`` (the decay cancels).
    A key whose decayed weight is 0 (no history, or underflow) restarts at
    the event.
    """
    warm = _touch_rows(key_ids, state)
    for i in range(key_ids.shape[0]):
        row = state[key_ids[i]]
        t = times[i]
        dt = 0.0
        if t > row[LAST]:
            dt = t - row[LAST]
            row[LAST] = t
        x = values[i]
        w = row[WEIGHT]
        a = 0.0
        prior = 0.0
        if w > 0.0:
            a = 2.0 ** (-dt / half_life)
            prior = a * w
        if prior > 0.0:
            m = row[MEAN]
            variance = row[M2] / w
            std = math.sqrt(variance) if variance > 0.0 else 0.0
        else:
            m = 0.0
            std = 0.0
        out_mean[i] = m
        out_std[i] = std
        out_weight[i] = prior
        if prior >= 2.0:
            scale = max(std, 0.1 * abs(m), 1e-9)
            out_zscore[i] = (x - m) / scale
        else:
            out_zscore[i] = 0.0
        if prior >= 1.0 and abs(m) > 1e-12:
            out_ratio[i] = x / m
        else:
            out_ratio[i] = 1.0
        if prior > 0.0:
            w_new = prior + 1.0
            m_new = m + (x - m) / w_new
            row[M2] = a * row[M2] + (x - m) * (x - m_new)
            row[WEIGHT] = w_new
            row[MEAN] = m_new
        else:
            row[WEIGHT] = 1.0
            row[MEAN] = x
            row[M2] = 0.0
    return warm


# --- recency and velocity -------------------------------------------------------


@njit(cache=True, nogil=True)
def recency_update(key_ids, times, cap, last_time, out_seconds):
    """Seconds since the key's previous event, ``cap`` for a first event, at most ``cap``."""
    warm = _touch(key_ids, last_time)
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        t = times[i]
        last = last_time[k]
        if last == -np.inf:
            out_seconds[i] = cap
        else:
            out_seconds[i] = min(max(t - last, 0.0), cap)
        if t > last:
            last_time[k] = t
    return warm


# ``state[k] = [last_time, decayed_count]``
COUNT = 1


@njit(cache=True, nogil=True)
def velocity_update(key_ids, times, half_life, state, out_per_min):
    """Decayed event count ``C' = aC + 1``; the feature is the prior ``aC`` as events/minute."""
    per_min = LN2 / half_life * 60.0
    warm = _touch_rows(key_ids, state)
    for i in range(key_ids.shape[0]):
        row = state[key_ids[i]]
        t = times[i]
        dt = 0.0
        if t > row[LAST]:
            dt = t - row[LAST]
            row[LAST] = t
        c = row[COUNT]
        prior = 0.0
        if c > 0.0:
            prior = 2.0 ** (-dt / half_life) * c
        out_per_min[i] = prior * per_min
        row[COUNT] = prior + 1.0
    return warm


# --- novelty: (key, value) occurrence counts in an open-addressing table ---------
#
# ``table[slot] = [code, count]`` with ``code = key_id << 32 | value_id`` (``-1``
# = empty): code and count share a cache line, so a probe costs one miss.

CODE = 0
HITS = 1


@njit(cache=True, inline="always")
def _home(code, mask):
    """The first slot probed for ``code`` (splitmix64 finaliser)."""
    z = np.uint64(code)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z & np.uint64(mask))


@njit(cache=True, inline="always")
def _slot(table, code, mask):
    """The slot holding ``code``, or the empty slot where it belongs (linear probing)."""
    slot = _home(code, mask)
    while True:
        stored = table[slot, CODE]
        if stored == code or stored == EMPTY_SLOT:
            return slot
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def novelty_update(key_ids, value_ids, table, distinct, used, out_novel, out_seen, out_distinct):
    """Prior count of (key, value) and the key's prior number of distinct values.

    ``table`` has a power-of-two number of rows; ``used[0]`` counts occupied slots.
    """
    mask = table.shape[0] - 1
    warm = _touch(key_ids, distinct)
    for i in range(key_ids.shape[0]):
        warm += table[_home((key_ids[i] << 32) | value_ids[i], mask), CODE]
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        code = (k << 32) | value_ids[i]
        slot = _slot(table, code, mask)
        out_distinct[i] = distinct[k]
        if table[slot, CODE] == EMPTY_SLOT:
            table[slot, CODE] = code
            table[slot, HITS] = 0
            used[0] += 1
            distinct[k] += 1
            out_novel[i] = 1.0
            out_seen[i] = 0.0
        else:
            out_novel[i] = 0.0
            out_seen[i] = table[slot, HITS]
        table[slot, HITS] += 1
    return warm


@njit(cache=True, nogil=True)
def novelty_rehash(old_table, new_table):
    """Move every occupied slot of the old table into the (empty) new one."""
    mask = new_table.shape[0] - 1
    for i in range(old_table.shape[0]):
        code = old_table[i, CODE]
        if code != EMPTY_SLOT:
            slot = _slot(new_table, code, mask)
            new_table[slot, CODE] = code
            new_table[slot, HITS] = old_table[i, HITS]


# --- per-series models ------------------------------------------------------------
#
# One row of ``series`` per series (an entity's metric): [last_time, readings, level, spread,
# run_count, run_sum, run_start, spread_readings, previous z's (the latest first), trend up, trend down,
# last reading, repeats in a row, repeat rate]; seasonal offsets and their reading counts per slot of the day
# (``day_off``/``day_cnt``, one column per slot: 24 for hourly slots) and per hour of the week (``week_off``/``week_cnt``, 168
# columns, 0 when the season is daily). ``pooled`` has one row per sibling group (a metric across
# all entities): [readings, level, absolute deviation, residual readings, residual spread]. The
# day's profile also keeps each slot's spread (``day_spread``).

S_LAST, S_N, S_LEVEL, S_SPREAD, S_RUN, S_RUN_SUM, S_RUN_START, S_SPREAD_N, S_PREV_Z = 0, 1, 2, 3, 4, 5, 6, 7, 8
#: the previous z's kept for ``sustained`` (up to this many readings besides the current one)
MAX_SUSTAINED = 4
#: one-sided CUSUMs of the clipped z's, upwards and downwards (``trend``)
S_TREND_UP, S_TREND_DOWN = S_PREV_Z + MAX_SUSTAINED, S_PREV_Z + MAX_SUSTAINED + 1
#: the previous reading, how many readings in a row equal it, and the series' rate of exact repeats (``stuck``)
S_LAST_X, S_REPEATS, S_REPEAT_RATE = S_TREND_DOWN + 1, S_TREND_DOWN + 2, S_TREND_DOWN + 3
SERIES_COLUMNS = S_REPEAT_RATE + 1
#: a series' repeat rate is learned with at least this weight, and kept within these bounds for the stuck z
REPEAT_ALPHA, REPEAT_FLOOR, REPEAT_CAP = 1e-3, 1e-3, 0.99
P_N, P_LEVEL, P_DEV, P_RN, P_RESID = 0, 1, 2, 3, 4
POOLED_COLUMNS = 5
#: mean absolute deviation x this estimates the standard deviation of normal data (sqrt(pi / 2))
MEAN_ABS_TO_STD = 1.2533
#: 1970-01-01 was a Thursday: (days since the epoch + 3) % 7 is the weekday with Monday = 0
EPOCH_WEEKDAY = 3


@njit(cache=True, inline="always")
def _decay_weight(dt, half_life):
    return 1.0 - math.exp(-LN2 * dt / half_life)


@njit(cache=True, inline="always")
def _tail_z(log_p):
    """The standard normal z whose upper tail has probability exp(``log_p``) (``log_p`` < 0), by the
    asymptotic expansion (within 0.05 for tails below 1e-3): lets a rare run read on the surprise scale."""
    a = -2.0 * log_p
    if a <= 1.0:
        return 0.0
    return math.sqrt(max(a - math.log(a) - math.log(2.0 * math.pi), 0.0))


@njit(cache=True, nogil=True)
def series_update(
    series_ids, group_ids, times, values, seasons, params,
    series, day_off, day_cnt, day_spread, week_off, week_cnt, pooled,
    out_z, out_expected, out_sigma, out_n, out_slot, out_trend, out_stuck,
):  # fmt: skip
    """Score each reading against its series' model as learned so far, then learn the reading.

    ``params`` = [level_half_life, spread_half_life, season_half_life, prior_weight, clip_z,
    shift_z, shift_after, shift_min_readings, min_rel_spread, min_slot_readings, pooled_alpha, slot_seconds,
    sustained, trend_slack, min_spread, stuck]. The standard deviation is at least ``min_spread`` (an absolute floor:
    a series that is almost always 0, an error share, would otherwise call its first 1 % a million sigma). With ``sustained`` = k > 1, a reading's output is the least extreme z of it and the series'
    k - 1 previous readings when all lie on the same side, else 0: blips shorter than k readings score
    about 0, an incident scores from its k-th reading. The model itself learns from every reading's own z.
    With ``trend_slack`` > 0, ``out_trend`` is the larger (signed) of two one-sided CUSUMs of the profiled
    readings' z, each clipped to ``clip_z`` and less the slack: a slow drift (a memory leak) accumulates
    there long before any single reading stands out, while one blip adds at most ``clip_z`` - slack.
    ``seasons[i]`` (per reading: a series keeps one): 0 none, 1 slot of the day (``slot_seconds`` wide), 2 hour of
    the week (falling back to the slot of the day until the week's hour has ``min_slot_readings``). ``out_slot`` says which profile
    spoke (0, 1, 2). A series id of -1 is not modelled (past the budget): its outputs are 0 and ``out_n`` -1.
    A slot of the day also keeps its own spread (a slot where a nightly job starts or
    ends is noisier than the rest of the day), and the band is the wider of the series' and the slot's.
    """
    level_hl, spread_hl, season_hl, prior_weight = params[0], params[1], params[2], params[3]
    clip_z, shift_z, shift_after, shift_min = params[4], params[5], params[6], params[7]
    min_rel, min_slot, pooled_alpha, slot_seconds, sustained = params[8], params[9], params[10], params[11], params[12]
    slack, min_spread, stuck = params[13], params[14], params[15]
    warm = _touch_rows(series_ids, series)
    for i in range(series_ids.shape[0]):
        k = series_ids[i]
        season = seasons[i]
        if k < 0:  # past the series budget: not modelled (the operator counts it)
            out_expected[i] = values[i]
            out_n[i] = -1.0
            continue
        g = group_ids[i]
        row = series[k]
        p = pooled[g]
        t = times[i]
        dt = 0.0
        if t < row[S_LAST]:
            t = row[S_LAST]
        else:
            if row[S_N] > 0:
                dt = t - row[S_LAST]
            row[S_LAST] = t
        x = values[i]
        n = row[S_N]
        hour = int(math.floor((t % 86400.0) / 3600.0))
        day_slot = int(math.floor((t % 86400.0) / slot_seconds))
        week_slot = int((math.floor(t / 86400.0) + EPOCH_WEEKDAY) % 7) * 24 + hour
        offset = 0.0
        used = 0
        if season >= 1 and n > 0:
            if season == 2 and week_cnt[k, week_slot] >= min_slot:
                offset = week_off[k, week_slot]
                used = 2
            elif day_cnt[k, day_slot] >= min_slot:
                offset = day_off[k, day_slot]
                used = 1
        if n == 0:
            expected = p[P_LEVEL] if p[P_N] > 0 else x
            spread = p[P_DEV]
        else:
            expected = row[S_LEVEL] + offset
            spread = row[S_SPREAD]
            m = row[S_SPREAD_N]
            if p[P_RN] > 0 and m + prior_weight > 0:  # siblings' residual spread as a prior worth ``prior_weight`` readings
                spread = (m * spread + prior_weight * p[P_RESID]) / (m + prior_weight)
        if season >= 1 and n > 0 and day_cnt[k, day_slot] > min_slot:
            spread = max(spread, day_spread[k, day_slot])
        sigma = max(MEAN_ABS_TO_STD * max(spread, min_rel * abs(expected), 1e-9), min_spread)
        z = (x - expected) / sigma if (n > 0 or p[P_N] > 0) else 0.0
        if sustained > 1:  # as surprising as the least surprising of the last k readings, on one side
            least = z
            for j in range(int(sustained) - 1):
                prev = row[S_PREV_Z + j]
                if prev * z <= 0:
                    least = 0.0
                    break
                if abs(prev) < abs(least):
                    least = prev
            out_z[i] = least
            for j in range(MAX_SUSTAINED - 1, 0, -1):
                row[S_PREV_Z + j] = row[S_PREV_Z + j - 1]
            row[S_PREV_Z] = z
        else:
            out_z[i] = z
        out_expected[i] = expected
        out_sigma[i] = sigma
        out_n[i] = n
        out_slot[i] = used
        if slack > 0 and n > 0 and (season == 0 or used > 0):
            step = min(max(z, -clip_z), clip_z)
            row[S_TREND_UP] = max(0.0, row[S_TREND_UP] + step - slack)
            row[S_TREND_DOWN] = min(0.0, row[S_TREND_DOWN] + step + slack)
        out_trend[i] = row[S_TREND_UP] if row[S_TREND_UP] >= -row[S_TREND_DOWN] else row[S_TREND_DOWN]
        if stuck > 0:  # k equal readings in a row, for a series that repeats a reading at rate r: a 1 in r**k event
            if n > 0 and x == row[S_LAST_X]:
                row[S_REPEATS] += 1.0
            else:
                row[S_REPEATS] = 1.0
            rate = min(max(row[S_REPEAT_RATE], REPEAT_FLOOR), REPEAT_CAP)
            out_stuck[i] = _tail_z(row[S_REPEATS] * math.log(rate)) if row[S_REPEATS] >= 3 and n >= 20 else 0.0
            if n > 0:
                row[S_REPEAT_RATE] += max(1.0 / n, REPEAT_ALPHA) * ((1.0 if x == row[S_LAST_X] else 0.0) - row[S_REPEAT_RATE])
            row[S_LAST_X] = x
        # learn: a reading moves the model at most clip_z sigmas, unless a run of them is a new level
        if n == 0:
            row[S_LEVEL] = x
        else:
            # until the profile knows this hour, the deviation from the level is what it must learn (unclipped),
            # and it says nothing of the spread or of a shift
            profiled = season == 0 or used > 0
            limit = clip_z * sigma
            r = min(max(x - expected, -limit), limit) if profiled else x - expected
            if not profiled:
                row[S_RUN] = 0.0
                row[S_RUN_SUM] = 0.0
            elif abs(z) > shift_z:
                sign = 1.0 if z > 0 else -1.0
                if row[S_RUN] * sign > 0:
                    row[S_RUN] += sign
                    row[S_RUN_SUM] += x - offset
                else:
                    row[S_RUN] = sign
                    row[S_RUN_SUM] = x - offset
                    row[S_RUN_START] = t
            else:
                row[S_RUN] = 0.0
                row[S_RUN_SUM] = 0.0
            if abs(row[S_RUN]) >= shift_min and t - row[S_RUN_START] >= shift_after:
                row[S_LEVEL] = row[S_RUN_SUM] / abs(row[S_RUN])  # a confirmed shift: the new level is normal
                row[S_RUN] = 0.0
                row[S_RUN_SUM] = 0.0
                row[S_TREND_UP] = 0.0
                row[S_TREND_DOWN] = 0.0
            else:
                a = max(1.0 / (n + 1.0), _decay_weight(dt, level_hl))
                row[S_LEVEL] += a * (expected + r - offset - row[S_LEVEL])
            if profiled:
                row[S_SPREAD_N] += 1.0
                row[S_SPREAD] += max(1.0 / row[S_SPREAD_N], _decay_weight(dt, spread_hl)) * (abs(r) - row[S_SPREAD])
                if p[P_RN] == 0:
                    p[P_RESID] = abs(r)
                else:
                    p[P_RESID] += max(1.0 / (p[P_RN] + 1.0), pooled_alpha) * (abs(r) - p[P_RESID])
                p[P_RN] += 1.0
            if season >= 1:
                deviation = expected + r - row[S_LEVEL]
                c = day_cnt[k, day_slot]
                weight = _decay_weight(dt, season_hl)
                if profiled and c >= min_slot:
                    # unclipped: a slot where a job starts or ends mixes two levels, and its band must say so
                    day_spread[k, day_slot] += max(1.0 / (c - min_slot + 1.0), weight) * (abs(x - expected) - day_spread[k, day_slot])
                day_off[k, day_slot] += max(1.0 / (c + 1.0), weight) * (deviation - day_off[k, day_slot])
                day_cnt[k, day_slot] = c + 1.0
                if season == 2:
                    c = week_cnt[k, week_slot]
                    week_off[k, week_slot] += max(1.0 / (c + 1.0), _decay_weight(dt, season_hl)) * (
                        deviation - week_off[k, week_slot])
                    week_cnt[k, week_slot] = c + 1.0
        row[S_N] = n + 1.0
        if p[P_N] == 0:
            p[P_LEVEL] = x
        else:
            w = max(1.0 / (p[P_N] + 1.0), pooled_alpha)
            p[P_LEVEL] += w * (x - p[P_LEVEL])
            p[P_DEV] += w * (abs(x - p[P_LEVEL]) - p[P_DEV])
        p[P_N] += 1.0
    return warm


# --- travel -----------------------------------------------------------------------
#
# ``state[k] = [last_time, last_lat, last_lon]`` (degrees); ``last_time = -inf`` before the key's first event.

EARTH_RADIUS_KM = 6371.0088


@njit(cache=True, inline="always")
def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(max(a, 0.0))))


@njit(cache=True, nogil=True)
def travel_update(key_ids, times, lats, lons, min_seconds, state, out_km, out_kmh):
    """Distance from the key's previous event's place and the speed it implies (the gap floored at
    ``min_seconds``); 0 for a key's first event. The time rule of every kernel applies."""
    warm = _touch_rows(key_ids, state)
    for i in range(key_ids.shape[0]):
        row = state[key_ids[i]]
        t = times[i]
        if row[0] == -np.inf:
            out_km[i] = 0.0
            out_kmh[i] = 0.0
        else:
            km = haversine_km(row[1], row[2], lats[i], lons[i])
            out_km[i] = km
            out_kmh[i] = km / (max(t - row[0], min_seconds) / 3600.0)
        if t >= row[0]:
            row[0] = t
        row[1] = lats[i]
        row[2] = lons[i]
    return warm


@njit(cache=True, nogil=True)
def count_before(key_ids, totals, out):
    """Each row's key's count before it (``totals`` plus the batch's earlier rows of that key), counting it in."""
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        out[i] = totals[k]
        totals[k] += 1
