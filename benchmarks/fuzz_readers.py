"""Long fuzzing run of the readers (the CI runs tests/test_fuzz.py with a small, fixed budget).

    python benchmarks/fuzz_readers.py --examples 50000 [--seed N] [--vocab-only | --params-only] [--result FILE]

Runs the same property tests as CI with more examples and a random (or given) seed, through pytest, so the
`reference` checkpoints and the oracle are exactly the CI's. A failure prints hypothesis' minimal example
and the seed to reproduce it; add it to the regression tables in tests/test_fuzz.py and fix the reader.
Writes benchmarks/results/fuzz.json (benchmarks/_result.py).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _result import add_result_option, table, write_result  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=20000, help="examples per property (CI uses 1000)")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--params-only", action="store_true", help="only the .params reader and mapping")
    group.add_argument("--vocab-only", action="store_true", help="only the gluonnlp vocabulary reader")
    add_result_option(ap, "fuzz")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    tests = ["test_fuzz_params_readers"] if args.params_only else ["test_fuzz_vocab_reader"] if args.vocab_only \
        else ["test_fuzz_params_readers", "test_fuzz_vocab_reader"]
    env = {**os.environ, "BORTCONV_FUZZ_EXAMPLES": str(args.examples), "BORTCONV_FUZZ_SEED": str(seed)}
    print(f"fuzzing {', '.join(tests)}: {args.examples} examples each, seed {seed}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--hypothesis-show-statistics", str(ROOT / "tests" / "test_fuzz.py"),
                           "-k", " or ".join(tests)], cwd=ROOT, env=env)
    verdict = "no failures" if proc.returncode == 0 else "FAILED (see above)"
    seconds = time.perf_counter() - t0
    print(f"{verdict} in {seconds:.0f} s; reproduce with --seed {seed} --examples {args.examples}")
    write_result("fuzz", {"fuzz": table(["properties", "examples each", "seed", "seconds", "verdict"],
                                        [[", ".join(tests), str(args.examples), str(seed), f"{seconds:.0f}", verdict]],
                                        right=(1, 2, 3))},
                 {"tests": tests, "examples": args.examples, "seed": seed, "seconds": seconds,
                  "returncode": proc.returncode}, {"examples": args.examples, "seed": seed}, args.result)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
