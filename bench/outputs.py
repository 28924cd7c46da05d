"""Where a bench writes its result: ``<out>/<name>.json`` (raw) and ``<out>/<name>.md`` (the table), atomically;
and how a bench script exits on bad input (:func:`run_main`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clarifylab.errors import ClarifyLabError
from clarifylab.io import write_json, write_text


def write_bench_result(out: str | Path, name: str, result: dict[str, Any], report: str, tag: str) -> None:
    """Write ``result`` and its markdown ``report`` under ``out``, print the report and where both went."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", result)
    write_text(out / f"{name}.md", report)
    print(report, flush=True)
    print(f"[{tag}] wrote {out / f'{name}.json'} and {out / f'{name}.md'}", flush=True)


def run_main(main: Callable[[], Any]) -> None:
    """Run a bench script's ``main``; a :class:`~clarifylab.errors.ClarifyLabError` becomes one ``error:`` line on
    stderr and exit status 2."""
    try:
        main()
    except ClarifyLabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
