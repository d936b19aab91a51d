"""Copy the comparison's per-task tables from a bench report into docs/RESULTS.md.

Usage: python bench/fill_results_tables.py bench/results/comparison-cifar10-test.md docs/RESULTS.md

Each "### <task> (n = N)" table of the report (with its same-images table and its larger-shared-sets
table, when the report has them) replaces the table (and those tables) under the heading of the same
task in the page, matched
by the heading's text before " (n = " (the report's "Blind deconv" is the page's "Blind deblurring
..."). Rows of methods that do not apply to a task (the report says why) are left
out; every other row is copied unchanged, so a row that is still running says "k of n images done".
The page's headings keep their own wording. The file is rewritten through a temporary file.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ALIASES = {"Blind deconv": "Blind deblurring"}
NOT_APPLICABLE = ("run on the blind task only", "supports masking operators only", "non-blind methods",
                  "does not apply", "needs the kernel")


SAME = "The same "  # the report's second table per task: every method on the images all restored
LARGER = "On larger shared image sets"  # its third: KID on larger sets, fewer methods
FOLLOWING = (SAME, LARGER)


def report_tables(text: str) -> dict[str, list[str]]:
    """{task label: the section's lines (its table, and the same-images and larger-sets paragraphs
    and tables when there are some)} from a bench results.md."""
    tables, label = {}, None
    for line in text.splitlines():
        m = re.match(r"### (.+?) \(n = \d+\)", line)
        if m:
            label = ALIASES.get(m.group(1), m.group(1))
            tables[label] = []
        elif label is not None and (line.startswith("|") or line.startswith(FOLLOWING) or not line):
            tables[label].append(line)
        elif label is not None:
            label = None
    return {k: _strip(v) for k, v in tables.items()}


def _strip(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines = lines[:-1]
    while lines and not lines[0]:
        lines = lines[1:]
    return lines


def applies(row: str) -> bool:
    cells = [c.strip() for c in row.strip("|").split("|")]
    return not (len(cells) > 1 and any(k in cells[1] for k in NOT_APPLICABLE))


def fill(page: str, tables: dict[str, list[str]]) -> tuple[str, list[str]]:
    lines, out, done, i = page.splitlines(), [], [], 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        m = re.match(r"### (.+?) \(n = \d+\)\s*$", line)
        key = next((k for k in tables if m and m.group(1).startswith(k)), None)
        if key is None:
            i += 1
            continue
        i += 1
        while i < len(lines) and not lines[i].startswith("|"):  # blank lines before the table
            out.append(lines[i])
            i += 1
        # The old section: its table, then any same-images or larger-sets paragraph with its table.
        end = i
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        while True:
            j = end
            while j < len(lines) and not lines[j]:
                j += 1
            if not (j < len(lines) and lines[j].startswith(FOLLOWING)):
                break
            j += 1
            while j < len(lines) and not lines[j]:
                j += 1
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            end = j
        i = end
        out.extend(r for r in tables[key] if applies(r))
        done.append(key)
    return "\n".join(out) + "\n", done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path)
    p.add_argument("page", type=Path)
    a = p.parse_args(argv)
    tables = report_tables(a.report.read_text())
    text, done = fill(a.page.read_text(), tables)
    missing = sorted(set(tables) - set(done))
    if missing:
        print(f"no heading in {a.page} for: {', '.join(missing)}", file=sys.stderr)
        return 1
    tmp = a.page.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(a.page)
    print(f"replaced {len(done)} tables in {a.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
