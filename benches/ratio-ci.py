#!/usr/bin/env python3
"""Per-round req/s and p99 ratios of two servers from a `benches/run.sh` results file, with a
bootstrap confidence interval for each median.

    benches/ratio-ci.py RESULTS.tsv SERVER PEER
    benches/ratio-ci.py target/bench-results/results.tsv omnirelay-grpc tonic

`run.sh` runs the two servers of a scenario back to back in every round, so each round gives
one req/s ratio SERVER / PEER and one p99 ratio. For each scenario both ran in the same rounds,
this prints the median of the req/s ratios with a 95% interval (4,000 resamples of the rounds
with replacement, seeded with the scenario's name, so the same rounds give the same
interval), how many rounds were above 1.0x, and the median p99 ratio with its interval.

An interval that does not contain 1.0 is a difference the rounds of this run resolve; one that
does is no difference they can show. The interval covers the spread between the rounds of one
run, not the drift between runs. Lines that are not results (a header, a short or malformed
line) and values that are not finite and positive are skipped, and reported on stderr.
"""

import math
import os
import random
import statistics
import sys
from collections import defaultdict

RESAMPLES = 4000
# Below this many rounds an interval says little; the scenario is reported, with a warning.
FEW_ROUNDS = 5


def warn(message):
    print(f"ratio-ci: {message}", file=sys.stderr)


def positive(text):
    """The field as a finite, positive float, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def read_rounds(path):
    """{(scenario, server): {round: (req/s, p99 us)}} from results.tsv's columns
    scenario, server, round, req/s, mean, p99, CPU, requests."""
    rounds = defaultdict(dict)
    skipped = 0
    with open(path, encoding="utf-8-sig") as results:
        for number, line in enumerate(results, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 6 or not (fields[2].isascii() and fields[2].isdigit()):
                skipped += 1
                continue
            key, round_ = (fields[0], fields[1]), int(fields[2])
            rps, p99 = positive(fields[3]), positive(fields[5])
            if rps is None:
                warn(f"{path}:{number}: req/s {fields[3]!r} is not a positive number; skipped")
                continue
            if p99 is None:
                warn(f"{path}:{number}: p99 {fields[5]!r} is not a positive number; its req/s "
                     "is used, its p99 is not")
            if round_ in rounds[key]:
                warn(f"{path}:{number}: {key[1]} has round {round_} of {key[0]} twice; "
                     "the later line is used")
            rounds[key][round_] = (rps, p99)
    if skipped:
        warn(f"{path}: {skipped} line(s) that are not results skipped")
    return rounds


def median_interval(values, rng):
    """The median of `values` and the 2.5th and 97.5th percentiles of the median over
    bootstrap resamples."""
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(RESAMPLES)
    )
    low, high = medians[int(RESAMPLES * 0.025)], medians[int(RESAMPLES * 0.975) - 1]
    return statistics.median(values), low, high


def report(scenario, server, peer, ours, theirs):
    """One line for a scenario; False when the two servers share no round. The resamples are
    seeded with the scenario's name, so its intervals do not depend on the rest of the file."""
    rng = random.Random(scenario)
    both = sorted(set(ours) & set(theirs))
    alone = len(set(ours) ^ set(theirs))
    if alone:
        warn(f"{scenario}: {alone} round(s) ran only one of the two servers; left out")
    if not both:
        warn(f"{scenario}: {server} and {peer} share no round")
        return False
    if len(both) < FEW_ROUNDS:
        warn(f"{scenario}: only {len(both)} round(s); the interval says little")
    speed = [ours[r][0] / theirs[r][0] for r in both]
    median, low, high = median_interval(speed, rng)
    above = sum(ratio > 1.0 for ratio in speed)
    line = (f"{scenario}: {len(both)} rounds, req/s {server} / {peer} per-round median "
            f"{median:.3f}x (95% interval {low:.3f}x-{high:.3f}x), above 1.0x in {above} of "
            f"{len(both)}")
    p99 = [ours[r][1] / theirs[r][1] for r in both if ours[r][1] and theirs[r][1]]
    if p99:
        median, low, high = median_interval(p99, rng)
        line += f"; p99 per-round median {median:.3f}x ({low:.3f}x-{high:.3f}x)"
        if len(p99) < len(both):
            line += f" over {len(p99)} rounds"
    else:
        line += "; p99 n/a"
    print(line)
    return True


def main(argv):
    if len(argv) != 4:
        sys.exit("ratio-ci: usage: benches/ratio-ci.py RESULTS.tsv SERVER PEER")
    path, server, peer = argv[1:]
    try:
        rounds = read_rounds(path)
    except OSError as err:
        sys.exit(f"ratio-ci: cannot read {path}: {err.strerror}")
    except UnicodeDecodeError:
        sys.exit(f"ratio-ci: {path} is not a text file (not UTF-8)")
    shown = 0
    for scenario in sorted({scenario for scenario, _ in rounds}):
        ours, theirs = rounds.get((scenario, server)), rounds.get((scenario, peer))
        if ours and theirs and report(scenario, server, peer, ours, theirs):
            shown += 1
    if not shown:
        sys.exit(f"ratio-ci: no scenario in {path} has rounds of both {server} and {peer}")


if __name__ == "__main__":
    if sys.stdout is None:
        sys.exit("ratio-ci: no standard output to write to")
    try:
        main(sys.argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`head`) has gone: stop quietly. Python flushes stdout again at exit, so
        # it is pointed at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as err:
        # Nowhere to write the output (a full disk, say).
        print(f"ratio-ci: cannot write the output: {err}", file=sys.stderr)
        sys.exit(1)
