"""A deterministic, labelled stream of a shop website's page views (user behaviour), with bots.

The simulator draws a site (categories, products, related-product links) and
a population of people from ``seed``; every day some of them browse, in
sessions that follow the site's links with human think times, and after
warm-up bots come: scripts with an inhumanly regular cadence, crawlers whose
page sequences no person follows, and scrapers fetching hundreds of pages in
minutes. Each event is one page view with the fields in :data:`FIELDS`;
``is_incident``/``incident`` are the ground truth on events (every page view of
a bot) and :meth:`BehaviourSimulator.incidents` is the incident table.

Example
-------
>>> from tocsin.simulate.behaviour import BehaviourSimulator
>>> sim = BehaviourSimulator(visitors=200, incident_rate=0.05, warmup_days=0.5, seed=3)
>>> batch = sim.generate(3_000)
>>> len(batch), batch.ids[0], batch.ids[-1], batch.keys[0]
(3000, 'pv000000000000', 'pv000000002999', 'v3fbaca320c')
>>> list(batch.numeric), list(batch.categorical), list(batch.extra)
([], ['session_id', 'ip', 'user_agent', 'page', 'page_type', 'referrer'], ['incident'])
>>> bool((batch.times[1:] >= batch.times[:-1]).all())   # one time-sorted stream
True
>>> resumed = next(sim.batches(500, start_position=1_200))  # resume anywhere
>>> resumed.ids.tolist() == batch.ids[1_200:1_700].tolist()
True
>>> sorted({incident["kind"] for incident in sim.incidents(sim.start_time + 3 * 86_400)})
['impossible_sequence', 'regular_cadence', 'scraping_burst']
>>> sorted(sim.incidents(sim.start_time + 86_400)[0])
['end', 'entities', 'entity', 'kind', 'start']

What the stream looks like
--------------------------
*The site.* A home page ``/``, 12 category pages ``/c/{name}``
(:data:`CATEGORIES`), 600 product pages ``/p/{id}`` (ids 1000-1599, each in a
category drawn at random, so ids are not grouped by category; popularity
lognormal, sigma 1.2), ``/search``, ``/cart``, ``/checkout``,
``/checkout/done``, ``/account`` and ``/help``. Every product page links to
4 related products of its category (drawn by popularity). ``page_type``
names the kind of page: home, category, product, search, cart, checkout,
account, help.

*People.* ``3 × visitors`` people, each with a visitor id (a long-lived
cookie, ``v`` + 10 hex digits: the events' key), a browser (``user_agent``:
desktop_chrome, desktop_safari, desktop_firefox, desktop_edge,
mobile_safari, mobile_chrome), an IP (85 % their own residential address,
10 % an office or mobile carrier address shared with other people, 5 % a VPN
in a data centre), a taste for the site (lognormal, sigma 1) and a pace
(lognormal, sigma 0.35). On a day, a person browses with a probability that
makes about ``visitors`` people browse (10 % more on Saturdays and
Sundays), in 1 + Poisson(0.3) sessions, each starting at a time drawn from
the site's daily rhythm (UTC; quiet 02-05h, rising through the morning, a
peak 19-21h). A session (``session_id``) lands on the home page (40 %), a
category (15 %), a product (30 %) or search (15 %) from outside
(``referrer``: google.com, direct '' , facebook.com, newsletter) and
follows the site's links for a lognormal number of pages (median 5, sigma
0.9, at most 100): home to categories and search, a category to its
products, a product to related products, back to its category, to search or
to the cart, the cart to checkout and so on (the ``referrer`` of an inner
page is the previous page). Think times between pages are lognormal (median
14 s × the person's pace, sigma 1.1, 0.3 s to 20 min): heavy tailed.

*Legit oddities that look like bots* but are people:

- power users: a session can run to dozens of pages;
- tabs: on 10 % of category pages a person opens 2-4 of its products in tabs
  at once (0.4-2.5 s apart, all with the category as referrer), then reads
  them: steps from product to product that are no link;
- shared IPs: an office or carrier address serves many people at once.

*Incidents* (``is_incident=1`` and ``incident`` = the kind on every page view
of the bot) start only at or after ``start + warmup_days``, uniformly at any
time of day: a day gets a Poisson number with mean ``incident_rate ×
visitors`` (times the share of the day after warm-up). A bot is a new
visitor id (it keeps its cookie), from a data-centre IP, with a browser's
``user_agent`` (it pretends to be one). Kinds, with their share:

- ``regular_cadence`` (1/3): for 20-90 minutes a script browses like a
  person (the same links) but requests a page every 3-25 s with a jitter of
  only ± 1-6 %;
- ``impossible_sequence`` (1/3): for 20-60 minutes a crawler fetches
  product pages in id order (``/p/1041``, ``/p/1042``…, the previous one as
  referrer) or, half of the time, random product pages by deep link
  (``referrer`` ''), never home or a category, at a human pace (lognormal
  think times, median 4-12 s, sigma 0.5-0.9);
- ``scraping_burst`` (1/3): for 3-10 minutes a scraper fetches 150-800
  pages (a Poisson process), crawling the site's links (categories, then
  their products one after another).

An incident's ``entity`` and ``entities`` are the bot's visitor id.

Determinism and resuming
------------------------
The site and people come from ``(seed,)``; day ``i``'s people from
``(seed, i)``, its incident plan from a plan stream of ``(seed, i)`` and
each bot's page views from its own stream (a number the plan draws), so a
day is a function of the parameters and its index alone. A session still
open at midnight is cut there (its later pages are not emitted; the site is
quiet then). A day's size needs the day's events, so it is computed by
generating the day (cached: ~0.1 s for 10,000 page views); resuming at
position ``p`` generates the days up to it. The same parameters give
identical events (for a given NumPy version).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tocsin.batch import EventBatch
from tocsin.simulate.daily import (
    DETAIL_STREAM,
    FLEET_STREAM,
    SECONDS_PER_DAY,
    FieldInfo,
    IncidentSimulator,
    position_ids,
    weekday,
    write_fields,
)

FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("id", "str", "ids", "unique id, 'pv' + the zero-padded global position"),
    FieldInfo("ts", "float", "times", "page view time, epoch seconds (millisecond resolution)"),
    FieldInfo("visitor_id", "str", "keys", "the visitor (entity): a long-lived cookie id, 'v' + 10 hex digits"),
    FieldInfo("session_id", "str", "categorical['session_id']", "the visit the page view belongs to"),
    FieldInfo("ip", "str", "categorical['ip']", "the client's IP address"),
    FieldInfo("user_agent", "str", "categorical['user_agent']", "the browser class, e.g. 'mobile_safari'"),
    FieldInfo("page", "str", "categorical['page']", "the page's route: '/', '/c/shoes', '/p/1042', '/cart', ..."),
    FieldInfo("page_type", "str", "categorical['page_type']", "home, category, product, search, cart, checkout, account or help"),
    FieldInfo("referrer", "str", "categorical['referrer']", "the previous page's route, an outside site, or '' (direct)"),
    FieldInfo("is_incident", "int8", "labels", "1 for a bot's page view, else 0"),
    FieldInfo("incident", "str", "extra['incident']", "the bot's kind, '' for people"),
)

CATEGORIES = ("shoes", "jackets", "shirts", "trousers", "dresses", "bags", "watches", "jewellery", "sports", "kids",
              "home", "beauty")
N_PRODUCTS = 600
FIRST_PRODUCT_ID = 1000
N_RELATED = 4
USER_AGENTS = ("desktop_chrome", "desktop_safari", "desktop_firefox", "desktop_edge", "mobile_safari", "mobile_chrome")
_UA_SHARE = (0.40, 0.10, 0.08, 0.07, 0.20, 0.15)
_OUTSIDE = ("google.com", "", "facebook.com", "newsletter")
_OUTSIDE_SHARE = (0.45, 0.35, 0.08, 0.12)
PEOPLE_PER_VISITOR = 3
WEEKEND_BOOST = 1.1
#: the site's daily rhythm: relative traffic in each UTC hour
HOURLY = np.array([0.30, 0.18, 0.10, 0.07, 0.07, 0.10, 0.22, 0.45, 0.70, 0.85, 0.95, 1.00,
                   1.05, 1.05, 1.00, 0.95, 0.95, 1.00, 1.15, 1.35, 1.40, 1.25, 0.90, 0.55])
THINK_MEDIAN_S, THINK_SIGMA = 14.0, 1.1
THINK_MIN_S, THINK_MAX_S = 0.3, 1_200.0
SESSION_MEDIAN_PAGES, SESSION_SIGMA, SESSION_MAX_PAGES = 5.0, 0.9, 100
TAB_SHARE = 0.10

# page types (their index is the page_type code)
PAGE_TYPES = ("home", "category", "product", "search", "cart", "checkout", "account", "help")
HOME, CATEGORY, PRODUCT, SEARCH, CART, CHECKOUT, ACCOUNT, HELP = range(8)
DONE = 8  # /checkout/done: a checkout page of its own route
# where a person goes next from each kind of page (rows: from HOME..HELP, DONE; columns: to HOME..HELP, then
# "related product" for PRODUCT rows, which picks among the product's links)
_NEXT = np.array([
    # home  cat   prod  search cart  chk   acct  help
    [0.00, 0.55, 0.12, 0.25, 0.00, 0.00, 0.05, 0.03],   # home
    [0.05, 0.12, 0.65, 0.10, 0.03, 0.00, 0.00, 0.05],   # category
    [0.04, 0.25, 0.33, 0.12, 0.20, 0.00, 0.02, 0.04],   # product (0.33: a related product)
    [0.03, 0.07, 0.80, 0.10, 0.00, 0.00, 0.00, 0.00],   # search
    [0.10, 0.15, 0.20, 0.05, 0.00, 0.50, 0.00, 0.00],   # cart
    [0.00, 0.00, 0.00, 0.00, 0.25, 0.75, 0.00, 0.00],   # checkout (0.75: done)
    [0.50, 0.30, 0.00, 0.20, 0.00, 0.00, 0.00, 0.00],   # account
    [0.50, 0.30, 0.00, 0.20, 0.00, 0.00, 0.00, 0.00],   # help
    [0.60, 0.30, 0.10, 0.00, 0.00, 0.00, 0.00, 0.00],   # done
])
_NEXT_CUM = np.cumsum(_NEXT / _NEXT.sum(axis=1, keepdims=True), axis=1)
_LANDING_CUM = np.cumsum([0.40, 0.15, 0.30, 0.15])  # home, category, product, search

INCIDENT_KINDS = ("regular_cadence", "impossible_sequence", "scraping_burst")
_REGULAR, _SEQUENCE, _SCRAPING = range(3)
_INCIDENT_SHARE = (1 / 3, 1 / 3, 1 / 3)
_DURATIONS_S = ((1_200.0, 5_400.0), (1_200.0, 3_600.0), (180.0, 600.0))
#: level: regular_cadence the request interval (s), impossible_sequence the median think time (s),
#: scraping_burst the pages fetched
_LEVEL_MIN = np.array([3.0, 4.0, 150.0])
_LEVEL_MAX = np.array([25.0, 15.0, 800.0])
_BOT_STREAM = 5
#: bots' visitor ids come from the upper half of the id space, people's from the bottom
_BOT_ID_BASE = 2**39
_ID_MULTIPLIER = 0x9E3779B1  # odd: i -> i * m + salt mod 2**40 is a bijection


class BehaviourSimulator(IncidentSimulator):
    """An endless, deterministic, labelled stream of a shop website's page views.

    Parameters
    ----------
    visitors:
        People browsing the site on a typical day (the population is three
        times that; each browses on some days). About 9-10 page views per
        person per day: 1,000 visitors make ~8,000-10,000 page views a day.
    incident_rate:
        Bots per visitor per day after warm-up (0.01: ~10 bots a day for 1,000 visitors).
    warmup_days, start, seed:
        Days of clean history, start of day 0 and seed, as for every
        :class:`~tocsin.simulate.daily.IncidentSimulator`.

    See the module docstring for what the site, the people and the bots look like.
    """

    FIELDS = FIELDS
    INCIDENT_KINDS = INCIDENT_KINDS
    INCIDENT_SHARE = _INCIDENT_SHARE

    def __init__(
        self,
        visitors: int = 1_000,
        incident_rate: float | None = 0.01,
        warmup_days: float = 1.0,
        start: str | float | datetime = "2026-01-01T00:00:00Z",
        seed: int = 7,
    ) -> None:
        if int(visitors) < 10:
            raise ValueError(f"visitors must be >= 10, got {visitors}")
        self.visitors = int(visitors)
        self._init_incidents(0.01 if incident_rate is None else incident_rate, warmup_days, start, seed, _DURATIONS_S,
                             per="visitor")
        self._entity_names = np.full(self.visitors, "", dtype=object)  # incidents are drawn per visitor; names: the bots'
        self._cache: dict[int, EventBatch] = {}
        self._build_site()
        self._build_people()

    # --- the site and its people ----------------------------------------------------

    def _build_site(self) -> None:
        rng = self._rng(FLEET_STREAM)
        self._category = rng.integers(len(CATEGORIES), size=N_PRODUCTS)
        popularity = np.exp(rng.normal(0.0, 1.2, size=N_PRODUCTS))
        self._popularity_cum = np.cumsum(popularity / popularity.sum())
        self._category_products: list[np.ndarray] = []
        self._category_cum: list[np.ndarray] = []
        for c in range(len(CATEGORIES)):
            members = np.flatnonzero(self._category == c)
            self._category_products.append(members)
            self._category_cum.append(np.cumsum(popularity[members] / popularity[members].sum()))
        self._related = np.zeros((N_PRODUCTS, N_RELATED), dtype=np.int64)
        for p in range(N_PRODUCTS):
            members = self._category_products[self._category[p]]
            weights = popularity[members] * (members != p)
            size = min(N_RELATED, int((weights > 0).sum()))
            chosen = rng.choice(members, size=size, replace=False, p=weights / weights.sum())
            self._related[p] = np.resize(chosen, N_RELATED)
        category_weight = np.bincount(self._category, weights=popularity, minlength=len(CATEGORIES))
        self._category_pick_cum = np.cumsum(category_weight / category_weight.sum())
        # page names: products first (index = product), then the categories, then the fixed pages
        self._page_names = np.array(
            [f"/p/{FIRST_PRODUCT_ID + p}" for p in range(N_PRODUCTS)] + [f"/c/{c}" for c in CATEGORIES]
            + ["/", "/search", "/cart", "/checkout", "/account", "/help", "/checkout/done"], dtype=object)
        base = N_PRODUCTS + len(CATEGORIES)
        self._fixed_page = {HOME: base, SEARCH: base + 1, CART: base + 2, CHECKOUT: base + 3, ACCOUNT: base + 4,
                            HELP: base + 5, DONE: base + 6}
        self._page_type_of = np.array([PRODUCT] * N_PRODUCTS + [CATEGORY] * len(CATEGORIES)
                                      + [HOME, SEARCH, CART, CHECKOUT, ACCOUNT, HELP, CHECKOUT], dtype=np.int64)
        self._salt = int(rng.integers(2**40))

    def _visitor_name(self, number: int) -> str:
        return f"v{(number * _ID_MULTIPLIER + self._salt) % 2**40:010x}"

    def _build_people(self) -> None:
        rng = self._rng(FLEET_STREAM, 1)
        n = PEOPLE_PER_VISITOR * self.visitors
        self._people = np.array([self._visitor_name(i) for i in range(n)], dtype=object)
        taste = np.exp(rng.normal(0.0, 1.0, size=n))
        self._browse_p = np.minimum(0.95, taste / taste.mean() / PEOPLE_PER_VISITOR)
        self._pace = np.exp(rng.normal(0.0, 0.35, size=n))
        self._ua = rng.choice(len(USER_AGENTS), size=n, p=_UA_SHARE)
        kind = rng.random(n)
        shared_pool = max(1, n // 40)
        own = [_residential(rng) for _ in range(n)]
        shared = [_residential(rng) for _ in range(shared_pool)]
        self._ip = np.array([own[i] if kind[i] < 0.85 else shared[int(rng.integers(shared_pool))] if kind[i] < 0.95
                             else _datacentre(rng) for i in range(n)], dtype=object)

    # --- incidents ----------------------------------------------------------------

    def _plan_details(self, rng: np.random.Generator, kind: np.ndarray, entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``level`` (by kind: the request interval, the median think time, the pages) and ``part`` (the bot's number:
        its visitor id and the seed of its page views)."""
        level = _LEVEL_MIN[kind] + rng.random(len(kind)) * (_LEVEL_MAX[kind] - _LEVEL_MIN[kind])
        part = _BOT_ID_BASE + rng.integers(_BOT_ID_BASE, size=len(kind))
        return level, part

    def _describe(self, kind: int, entity: int, part: int) -> str:
        """The bot's visitor id."""
        return self._visitor_name(part)

    def incidents(self, until_time: str | float | datetime) -> list[dict[str, Any]]:
        """Every bot starting before ``until_time`` (epoch seconds, ISO 8601 or datetime), by start: ``{"kind",
        "entity", "entities", "start", "end"}``, ``entity`` the bot's visitor id and ``entities`` ``[entity]``."""
        table = super().incidents(until_time)
        for incident in table:
            incident["entities"] = [incident["entity"]]
        return table

    # --- days -------------------------------------------------------------------

    def _day_size(self, index: int) -> int:
        return len(self._events(index)[0])

    def _events(self, index: int) -> tuple[np.ndarray, ...]:
        """Day ``index``'s page views, time-sorted: (times, person or -1, bot number, session, ip, ua, page,
        referrer, incident code), cached for the last few days."""
        if index not in self._cache:
            if len(self._cache) >= 3:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = self._generate(index)
        return self._cache[index]

    def _generate(self, index: int) -> Any:
        day_start = self.start_time + index * SECONDS_PER_DAY
        day_end = day_start + SECONDS_PER_DAY
        rng = self._rng(DETAIL_STREAM, index)
        boost = WEEKEND_BOOST if weekday(np.array([day_start + 43_200.0]))[0] >= 5 else 1.0
        browsing = np.flatnonzero(rng.random(len(self._people)) < np.minimum(0.95, self._browse_p * boost))
        sessions = 1 + rng.poisson(0.3, size=len(browsing))
        person = np.repeat(browsing, sessions)
        hour = rng.choice(24, size=len(person), p=HOURLY / HOURLY.sum())
        starts = np.round(day_start + (hour + rng.random(len(person))) * 3600.0, 3)
        order = np.argsort(starts, kind="stable")
        person, starts = person[order], starts[order]

        times: list[float] = []
        who: list[str] = []
        session_ids: list[str] = []
        ips: list[str] = []
        uas: list[str] = []
        pages: list[int] = []
        referrers: list[str] = []
        codes: list[int] = []
        for s, (p, t0) in enumerate(zip(person.tolist(), starts.tolist())):
            walk_times, walk_pages, walk_refs = self._human_session(rng, t0, float(self._pace[p]))
            keep = [i for i, t in enumerate(walk_times) if t < day_end]
            sid = f"s{index:05d}{s:06d}"
            for i in keep:
                times.append(walk_times[i])
                pages.append(walk_pages[i])
                referrers.append(walk_refs[i])
            m = len(keep)
            who += [self._people[p]] * m
            session_ids += [sid] * m
            ips += [self._ip[p]] * m
            uas += [USER_AGENTS[self._ua[p]]] * m
            codes += [0] * m

        around = self._incidents_around(index)
        for i in range(len(around)):
            kind, start, end = int(around.kind[i]), float(around.start[i]), float(around.end[i])
            if end <= day_start or start >= day_end:
                continue
            number = int(around.part[i])
            bot_times, bot_pages, bot_refs, ip, ua = self._bot(kind, start, end, float(around.level[i]), number)
            keep = [j for j, t in enumerate(bot_times) if day_start <= t < day_end]
            m = len(keep)
            times += [bot_times[j] for j in keep]
            pages += [bot_pages[j] for j in keep]
            referrers += [bot_refs[j] for j in keep]
            who += [self._visitor_name(number)] * m
            session_ids += [f"b{number % 10**11:011d}"] * m
            ips += [ip] * m
            uas += [ua] * m
            codes += [kind + 1] * m

        t = np.minimum(np.array(times, dtype=np.float64), day_end - 0.001)
        order = np.argsort(t, kind="stable")
        page = np.array(pages, dtype=np.int64)[order]
        return (t[order], np.array(who, dtype=object)[order], np.array(session_ids, dtype=object)[order],
                np.array(ips, dtype=object)[order], np.array(uas, dtype=object)[order], page,
                np.array(referrers, dtype=object)[order], np.array(codes, dtype=np.int64)[order])

    # --- people -----------------------------------------------------------------------

    def _product(self, rng: np.random.Generator, within: int | None = None) -> int:
        """A product by popularity (within a category when given)."""
        if within is None:
            return int(min(np.searchsorted(self._popularity_cum, rng.random()), N_PRODUCTS - 1))
        members, cum = self._category_products[within], self._category_cum[within]
        return int(members[min(np.searchsorted(cum, rng.random()), len(members) - 1)])

    def _category_page(self, rng: np.random.Generator) -> int:
        return N_PRODUCTS + int(min(np.searchsorted(self._category_pick_cum, rng.random()), len(CATEGORIES) - 1))

    def _page_of(self, rng: np.random.Generator, to: int, current: int, last_product: int) -> int:
        """The page a person goes to, of kind ``to``, from page ``current``."""
        if to == PRODUCT:
            current_type = self._page_type_of[current] if current >= 0 else -1
            if current_type == PRODUCT:
                return int(self._related[current, int(rng.integers(N_RELATED))])
            if current_type == CATEGORY:
                return self._product(rng, current - N_PRODUCTS)
            if current_type == CART and last_product >= 0:
                return last_product
            return self._product(rng)
        if to == CATEGORY:
            if current >= 0 and current < N_PRODUCTS and rng.random() < 0.7:
                return N_PRODUCTS + int(self._category[current])
            return self._category_page(rng)
        return self._fixed_page[to]

    def _human_session(self, rng: np.random.Generator, t0: float, pace: float) -> tuple[list[float], list[int], list[str]]:
        length = int(min(SESSION_MAX_PAGES, max(1, round(np.exp(np.log(SESSION_MEDIAN_PAGES) + SESSION_SIGMA * rng.normal())))))
        landing = int(np.searchsorted(_LANDING_CUM, rng.random() * _LANDING_CUM[-1]))
        page = self._page_of(rng, (HOME, CATEGORY, PRODUCT, SEARCH)[landing], -1, -1)
        times, pages = [t0], [page]
        referrers = [_OUTSIDE[int(np.searchsorted(np.cumsum(_OUTSIDE_SHARE), rng.random() * 0.9999))]]
        last_product = page if page < N_PRODUCTS else -1
        t = t0
        tabs: list[int] = []
        tab_parent = -1
        while len(pages) < length:
            current = pages[-1]
            if tabs:  # reading the products opened in tabs, one after another
                nxt = tabs.pop(0)
                t += _think(rng, pace)
                times.append(round(t, 3))
                pages.append(nxt)
                referrers.append(str(self._page_names[tab_parent]))
                last_product = nxt
                continue
            current_type = int(self._page_type_of[current])
            if current == self._fixed_page[DONE]:
                row = 8
            else:
                row = current_type
            if current_type == CATEGORY and rng.random() < TAB_SHARE and len(pages) + 2 <= length:
                count = int(rng.integers(2, 5))
                opened = [self._product(rng, current - N_PRODUCTS) for _ in range(count)]
                tab_parent = current
                for product in opened:  # opened at once from the category page: each tab loads
                    t += rng.uniform(0.4, 2.5)
                    times.append(round(t, 3))
                    pages.append(product)
                    referrers.append(str(self._page_names[current]))
                    if len(pages) >= length:
                        break
                tabs = [opened[0]] if len(pages) < length else []  # then back to the first tab, to read it again
                last_product = opened[-1]
                continue
            to = int(np.searchsorted(_NEXT_CUM[row], rng.random() * 0.999999))
            if row == CHECKOUT and to == CHECKOUT:
                nxt = self._fixed_page[DONE]
            else:
                nxt = self._page_of(rng, to, current, last_product)
            t += _think(rng, pace)
            times.append(round(t, 3))
            pages.append(nxt)
            referrers.append(str(self._page_names[current]))
            if nxt < N_PRODUCTS:
                last_product = nxt
        return times, pages, referrers

    # --- bots -------------------------------------------------------------------------

    def _bot(self, kind: int, start: float, end: float, level: float, number: int
             ) -> tuple[list[float], list[int], list[str], str, str]:
        """A bot's page views in ``[start, end)``: times, pages, referrers, its IP and user agent."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed % 2**64, _BOT_STREAM, number]))
        ip = _datacentre(rng)
        ua = USER_AGENTS[int(rng.choice(len(USER_AGENTS), p=_UA_SHARE))]
        times: list[float] = []
        pages: list[int] = []
        referrers: list[str] = []
        if kind == _REGULAR:
            jitter = rng.uniform(0.01, 0.12)
            human_times, human_pages, human_refs = [], [], []
            t = start
            while len(human_pages) < 100_000:
                _, walk_pages, walk_refs = self._human_session(rng, 0.0, 1.0)
                human_pages += walk_pages
                human_refs += walk_refs
                if len(human_pages) * level > end - start + level:
                    break
            while t < end and len(times) < len(human_pages):
                times.append(round(t, 3))
                t += level * (1.0 + rng.uniform(-jitter, jitter))
            pages, referrers = human_pages[:len(times)], human_refs[:len(times)]
            del human_times
        elif kind == _SEQUENCE:
            sigma = rng.uniform(0.5, 0.9)
            in_order = rng.random() < 0.5
            product = int(rng.integers(N_PRODUCTS))
            t = start
            previous = ""
            while t < end:
                times.append(round(t, 3))
                pages.append(product)
                referrers.append(previous if in_order else "")
                previous = str(self._page_names[product])
                product = (product + 1) % N_PRODUCTS if in_order else int(rng.integers(N_PRODUCTS))
                t += min(THINK_MAX_S, level * np.exp(sigma * rng.normal()))
        else:  # scraping: a Poisson process crawling the categories, then their products one after another
            rate = level / (end - start)
            t = start
            queue = [self._fixed_page[HOME]] + [N_PRODUCTS + c for c in rng.permutation(len(CATEGORIES)).tolist()]
            previous = ""
            while t < end:
                if not queue:
                    c = int(rng.integers(len(CATEGORIES)))
                    queue = [N_PRODUCTS + c] + self._category_products[c].tolist()
                page = queue.pop(0)
                if page >= N_PRODUCTS and self._page_type_of[page] == CATEGORY and len(queue) < 20:
                    queue += self._category_products[page - N_PRODUCTS].tolist()
                times.append(round(t, 3))
                pages.append(page)
                referrers.append(previous)
                previous = str(self._page_names[page])
                t += rng.exponential(1.0 / rate)
        return times, pages, referrers, ip, ua

    def day(self, index: int) -> EventBatch:
        """All page views of simulated day ``index`` (0 = the day starting at ``start``), sorted by time."""
        index = self._check_day(index)
        times, who, session, ip, ua, page, referrer, code = self._events(index)
        first_position = self._day_position(index)
        positions = np.arange(first_position, first_position + len(times), dtype=np.int64)
        labels, extra = self._labels(code)
        page_type = np.array(PAGE_TYPES, dtype=object)[self._page_type_of[page]] if len(page) else np.array([], dtype=object)
        return EventBatch(
            ids=position_ids("pv", positions),
            keys=who,
            times=times,
            numeric={},
            categorical={"session_id": session, "ip": ip, "user_agent": ua, "page": self._page_names[page],
                         "page_type": page_type, "referrer": referrer},
            positions=positions,
            labels=labels,
            extra=extra,
        )


def _think(rng: np.random.Generator, pace: float) -> float:
    """A person's think time before the next page: lognormal, heavy tailed."""
    return float(min(THINK_MAX_S, max(THINK_MIN_S, THINK_MEDIAN_S * pace * np.exp(THINK_SIGMA * rng.normal()))))


def _residential(rng: np.random.Generator) -> str:
    first = int(rng.choice([24, 67, 71, 81, 86, 92, 98, 109, 151, 176, 188, 212]))
    a, b, c = (int(x) for x in rng.integers(1, 255, size=3))
    return f"{first}.{a}.{b}.{c}"


def _datacentre(rng: np.random.Generator) -> str:
    first = int(rng.choice([3, 13, 18, 34, 35, 52, 54, 104, 138, 159]))
    a, b, c = (int(x) for x in rng.integers(1, 255, size=3))
    return f"{first}.{a}.{b}.{c}"


# --- files -------------------------------------------------------------------


def write_events(batch: EventBatch, path: str | Path, format: str | None = None) -> None:
    """Write a page-view batch with one record per page view and every field of :data:`FIELDS`.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix.
    """
    write_fields(batch, FIELDS, path, format)


__all__ = ["FIELDS", "INCIDENT_KINDS", "BehaviourSimulator", "write_events"]
