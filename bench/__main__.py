"""make bench: web tier, task pipeline and deployment figures on the running lab, written to
bench/RESULTS.md. Every figure is a ratio of two measurements taken in the same run."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import database, deploy, pipeline, report, web
from .lab import ROOT, sh

PARTS = {"deploy": deploy.run, "web": web.run, "tasks": pipeline.run, "database": database.run}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts to run ({', '.join(PARTS)})")
    args = parser.parse_args()
    if "lab-web" not in sh("docker", "ps", "--format", "{{.Names}}"):
        print("[bench] the lab is not running: run `make lab` first", file=sys.stderr)
        return 1
    started = time.monotonic()
    results = {}
    for name in args.only.split(","):
        results[name] = PARTS[name]()
        print(f"[bench] {name}: {json.dumps(results[name])}", flush=True)
    results["seconds"] = round(time.monotonic() - started)
    (ROOT / ".cache" / "bench.json").write_text(json.dumps(results, indent=2))
    text = report.render(results)
    if set(args.only.split(",")) == set(PARTS):
        (ROOT / "bench" / "RESULTS.md").write_text(text)
    else:
        print("[bench] a partial run: bench/RESULTS.md is left as it is (it holds one whole run)", flush=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
