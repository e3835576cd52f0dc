"""SemEval-2010 Task 8 read as plain 19-class text classification (for benchmarks/defaults_check.sh).

Writes ``train.tsv`` and ``test.tsv`` (``text<TAB>label``, entity markers kept in the text, the
relation with its direction as the label, e.g. ``Component-Whole(e2,e1)``) into OUT_DIR, outside
the repository's tracked files. The official release has 4 lines per example (id<TAB>"text",
relation, comment, blank) with CRLF line ends.

    .venv/bin/python benchmarks/semeval_as_tsv.py ../shared/data/semeval2010_task8 /tmp/semeval19
"""

from __future__ import annotations

import sys
from pathlib import Path


def read(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
    examples = []
    for i in range(0, len(lines) - 1, 4):
        if not lines[i].strip():
            break
        number, text = lines[i].split("\t", 1)
        examples.append((text.strip().strip('"'), lines[i + 1].strip()))
    return examples


def main(source: str, out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, split in (("TRAIN_FILE.TXT", "train"), ("TEST_FILE_FULL.TXT", "test")):
        examples = read(Path(source) / name)
        (out_dir / f"{split}.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in examples), encoding="utf-8")
        print(f"{split}: {len(examples)} examples, {len({label for _, label in examples})} labels", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:3])
