#!/usr/bin/env python3
"""Per-round req/s ratios of two servers from a `benches/run.sh` results file, with a
bootstrap confidence interval for their median.

    benches/ratio-ci.py RESULTS.tsv SERVER PEER
    benches/ratio-ci.py target/bench-results/results.tsv omnirelay-grpc tonic

`run.sh` runs the two servers of a scenario back to back in every round, so each round gives
one req/s ratio SERVER / PEER (and one p99 ratio). For each scenario both ran, this prints the
median of those ratios, a 95% interval for that median (4,000 resamples of the rounds with
replacement, fixed seed, so the same file gives the same interval), how many rounds were above
1.0x, and the median of the per-round p99 ratios. An interval that does not contain 1.0 is a
difference the rounds resolve; one that does is a tie at this many rounds.
"""

import random
import statistics
import sys
from collections import defaultdict

RESAMPLES = 4000


def read_rounds(path):
    """{(scenario, server): {round: (req/s, p99 us)}} from results.tsv's columns
    scenario, server, round, req/s, mean, p99, CPU, requests."""
    rounds = defaultdict(dict)
    with open(path) as results:
        for line in results:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 6:
                continue
            try:
                rounds[(fields[0], fields[1])][int(fields[2])] = (
                    float(fields[3]),
                    float(fields[5]),
                )
            except ValueError:
                continue  # a header or a malformed line
    return rounds


def median_interval(values, rng):
    """The 2.5th and 97.5th percentiles of the median over bootstrap resamples."""
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(RESAMPLES)
    )
    return medians[int(RESAMPLES * 0.025)], medians[int(RESAMPLES * 0.975) - 1]


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: benches/ratio-ci.py RESULTS.tsv SERVER PEER")
    path, server, peer = argv[1:]
    try:
        rounds = read_rounds(path)
    except OSError as err:
        sys.exit(f"cannot read {path}: {err.strerror}")
    rng = random.Random(1)
    scenarios = sorted({scenario for scenario, _ in rounds})
    shown = 0
    for scenario in scenarios:
        ours, theirs = rounds.get((scenario, server)), rounds.get((scenario, peer))
        if not ours or not theirs:
            continue
        both = sorted(set(ours) & set(theirs))
        speed = [ours[r][0] / theirs[r][0] for r in both]
        p99 = [ours[r][1] / theirs[r][1] for r in both if theirs[r][1] > 0]
        low, high = median_interval(speed, rng)
        above = sum(ratio > 1.0 for ratio in speed)
        print(
            f"{scenario}: {len(both)} rounds, req/s {server} / {peer} per-round median "
            f"{statistics.median(speed):.3f}x (95% interval {low:.3f}x-{high:.3f}x), "
            f"above 1.0x in {above} of {len(both)}; p99 per-round median "
            f"{statistics.median(p99):.3f}x"
        )
        shown += 1
    if not shown:
        sys.exit(f"no scenario in {path} has rounds of both {server} and {peer}")


if __name__ == "__main__":
    main(sys.argv)
