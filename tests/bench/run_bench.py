#!/usr/bin/env python3
"""`make bench`: run every tests/bench/bench_*.py in turn; each prints its
own tables. Figures only: nothing is asserted. Exit status is non-zero only
when a benchmark could not run to its end."""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    failed = []
    for path in sorted(glob.glob(os.path.join(HERE, "bench_*.py"))):
        name = os.path.basename(path)
        print(f"==== {name}", flush=True)
        proc = subprocess.run([sys.executable, path] + sys.argv[1:])
        if proc.returncode != 0:
            print(f"==== {name}: exited {proc.returncode}", flush=True)
            failed.append(name)
    if failed:
        print("benchmarks that did not finish: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
