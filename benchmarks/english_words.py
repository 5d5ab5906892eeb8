"""Write bortconv/data/english_words.txt, the English word list `bortconv trim`'s ``common`` and ``related`` steps
rank by.

    python benchmarks/english_words.py [--wheel wordfreq-3.1.1-py3-none-any.whl]

The list is wordfreq 3.1.1's "small" English word list (``wordfreq/data/small_en.msgpack.gz``: every word with a
frequency of at least one per million, Zipf >= 3, in buckets of 0.01 Zipf), most frequent first, one word per
line, read straight from the wheel (``pip download --no-deps wordfreq==3.1.1``; wordfreq is never imported, and
``msgpack`` reads the file). wordfreq's data is CC BY-SA 4.0 (bortconv/data/LICENSE-wordfreq.txt), so the list is
too.
"""

from __future__ import annotations

import argparse
import gzip
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bortconv" / "data" / "english_words.txt"
WHEEL = "wordfreq==3.1.1"
MEMBER = "wordfreq/data/small_en.msgpack.gz"
HEADER = ("# English words, most frequent first: wordfreq 3.1.1's small English list (Zipf >= 3), by Robyn Speer\n"
          "# et al., https://github.com/rspeer/wordfreq; CC BY-SA 4.0 (LICENSE-wordfreq.txt). Written by\n"
          "# benchmarks/english_words.py; bortconv trim's 'common' and 'related' steps rank tokens by it.\n")


def words(wheel: Path) -> list[str]:
    """The list's words, most frequent first (within a 0.01-Zipf bucket, wordfreq's order)."""
    import msgpack

    with zipfile.ZipFile(wheel) as z:
        data = msgpack.unpackb(gzip.decompress(z.read(MEMBER)), raw=False)
    assert data[0].get("format") == "cB", data[0]
    return [w for bucket in data[1:] for w in bucket if w.strip() == w and w]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, help="wordfreq's wheel (default: pip download it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", tmp], check=True)
            wheel = next(Path(tmp).glob("wordfreq-*.whl"))
        listed = words(wheel)
    with io.open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(HEADER + "".join(w + "\n" for w in listed))
    print(f"{OUT.relative_to(ROOT)}: {len(listed):,} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
