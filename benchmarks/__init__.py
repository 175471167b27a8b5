"""Benchmarks: `python -m benchmarks.<name>` prints one table (see the README's Benchmarks)."""

from __future__ import annotations

from typing import Sequence


def print_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, the head between two rules, a rule at the end."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    for r in [head, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
        if r is head:
            print(line)
    print(line)
