"""Near-copy similarity of a sample to a demonstration, in time linear in their lengths.

The measure is difflib's `SequenceMatcher(None, a, b, autojunk=False).ratio()` on the
normalised texts, 2 M / (len(a) + len(b)) with M the characters its matching blocks
cover: the measure the filter has always used. Computed directly it is quadratic (a
2,000-word sample against a 20,000-word demonstration took 24 s), so:

- 2 min / (len(a) + len(b)) bounds the ratio from above, so a pair of very different
  lengths is never a near copy, decided at no cost;
- a pair of at most `EXACT_CELLS` character pairs is matched by difflib itself (every
  text of the bundled corpora is that short);
- a longer pair follows difflib's own recursion (take the longest common block of a
  range, then do the same left and right of it) over the common runs that hold an
  `ANCHOR`-gram rare in the demonstration, found in one pass by hashing; what is left
  between the chosen runs is matched by difflib, in pieces where it is long on both
  sides.

benchmarks/bench_near_copy.py measures the time and how often the decision agrees with
the exact ratio on edited copies of real texts (benchmarks/results/near-copy.md).
"""

from __future__ import annotations

import difflib
import heapq
from bisect import bisect_left, bisect_right
from collections import defaultdict

# Character pairs (len(a) * len(b)) up to which difflib computes the ratio itself: at
# most ~25 ms, for two texts of ~700 characters.
EXACT_CELLS = 500_000
ANCHOR = 8  # characters in an anchor n-gram: about a word and a half of English
MAX_OCCURRENCES = 16  # n-grams more frequent than this in the demonstration are no anchors
# A gap between chosen blocks longer than GAP characters on both sides and over
# EXACT_CELLS is matched in pieces of about GAP characters.
GAP = 200

Block = tuple[int, int, int]  # start in a, start in b, length


def _matched(a: str, b: str) -> int:
    """Characters difflib matches between two strings (autojunk off, as `ratio` is)."""
    blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks)


def _runs(a: str, b: str) -> list[Block]:
    """The maximal common runs through an ANCHOR-gram of `a` that occurs in `b` at most
    MAX_OCCURRENCES times, each found once (a run ends where the diagonal's chars differ)."""
    where: defaultdict[str, list[int]] = defaultdict(list)
    for j in range(len(b) - ANCHOR + 1):
        where[b[j : j + ANCHOR]].append(j)
    run_end: dict[int, int] = {}  # diagonal j - i -> end in a of the last run found on it
    runs: list[Block] = []
    for i in range(len(a) - ANCHOR + 1):
        js = where.get(a[i : i + ANCHOR])
        if not js or len(js) > MAX_OCCURRENCES:
            continue
        for j in js:
            d = j - i
            if run_end.get(d, -1) > i:
                continue  # inside the run found last on this diagonal
            s = i
            while s > 0 and s + d > 0 and a[s - 1] == b[s + d - 1]:
                s -= 1
            e = i + ANCHOR
            while e < len(a) and e + d < len(b) and a[e] == b[e + d]:
                e += 1
            run_end[d] = e
            runs.append((s, s + d, e - s))
    return runs


def _longest_first(runs: list[Block], len_a: int, len_b: int) -> list[Block]:
    """Blocks chosen as difflib chooses them: the longest (earliest on ties) common block
    of a range, then the same in the ranges left and right of it; a run crossing a chosen
    block competes with its parts on either side."""
    heap = [(-size, i, j) for i, j, size in runs]
    heapq.heapify(heap)
    chosen: list[Block] = []
    starts: list[int] = []
    while heap:
        neg, i, j = heapq.heappop(heap)
        size, d = -neg, j - i
        pieces = []
        for c in range(bisect_right(starts, i), bisect_left(starts, i + size) + 1):
            # the free cell between chosen blocks c - 1 and c
            if c:
                before = chosen[c - 1]
                lo_a, lo_b = before[0] + before[2], before[1] + before[2]
            else:
                lo_a = lo_b = 0
            hi_a, hi_b = chosen[c][:2] if c < len(chosen) else (len_a, len_b)
            lo, hi = max(i, lo_a, lo_b - d), min(i + size, hi_a, hi_b - d)
            # a shorter piece may not be its cell's longest block: difflib decides there
            if hi - lo >= ANCHOR:
                pieces.append((lo, lo + d, hi - lo))
        if pieces == [(i, j, size)]:
            at = bisect_left(starts, i)
            starts.insert(at, i)
            chosen.insert(at, (i, j, size))
        else:
            for lo, lo_b, n in pieces:
                heapq.heappush(heap, (-n, lo, lo_b))
    return chosen


def _gap_matches(x: str, y: str) -> int:
    """difflib's matches between two gaps, summed over matching pieces of the two when
    both are long. Linear in len(x) + len(y): difflib's work is at most GAP times the
    longer side, or EXACT_CELLS for a gap with both sides over GAP (so there are at most
    (len(a) + len(b)) / (2 GAP) such gaps in a pair), or GAP times the longer side again
    for the pieces."""
    if not x or not y:
        return 0
    if min(len(x), len(y)) <= GAP or len(x) * len(y) <= EXACT_CELLS:
        return _matched(x, y)
    m = -(-min(len(x), len(y)) // GAP)
    cut_x = [k * len(x) // m for k in range(m + 1)]
    cut_y = [k * len(y) // m for k in range(m + 1)]
    return sum(_matched(x[cut_x[k] : cut_x[k + 1]], y[cut_y[k] : cut_y[k + 1]]) for k in range(m))


def estimated_matches(a: str, b: str) -> int:
    """Matched characters of a long pair, in time linear in len(a) + len(b)."""
    matched = start_a = start_b = 0
    for i, j, size in [*_longest_first(_runs(a, b), len(a), len(b)), (len(a), len(b), 0)]:
        matched += _gap_matches(a[start_a:i], b[start_b:j]) + size
        start_a, start_b = i + size, j + size
    return matched


def similarity(a: str, b: str, at_least: float = 0.0) -> float:
    """SequenceMatcher's ratio of two normalised texts: exact up to EXACT_CELLS character
    pairs, estimated in linear time above. A pair that cannot reach `at_least` (by its
    lengths) gets that upper bound instead."""
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    bound = 2.0 * min(len(a), len(b)) / total
    if bound < at_least:
        return bound
    if len(a) * len(b) <= EXACT_CELLS:
        return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    return 2.0 * estimated_matches(a, b) / total


def is_near_copy(sample: str, demo: str, threshold: float) -> bool:
    """Whether two normalised texts are at least `threshold` similar (see `similarity`)."""
    return similarity(sample, demo, at_least=threshold) >= threshold
