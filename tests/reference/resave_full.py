"""Runs in the mxnet environment: re-save a `save_parameters(deduplicate=True)` file as a full one.

Gluon's non-deduplicated save writes the tied matrix under both of its names (``word_embed.0.weight`` and
``decoder.3.weight``, byte-identical). mxnet itself loads the deduplicated file and writes the full one, so the
test compares two files mxnet wrote, not one bortconv wrote.

usage: resave_full.py DEDUP.params OUT.params
"""

import sys

import mxnet as mx


def main(src: str, out: str) -> None:
    arrays = mx.nd.load(src)
    assert "word_embed.0.weight" not in arrays and "decoder.3.weight" in arrays, sorted(arrays)
    arrays["word_embed.0.weight"] = arrays["decoder.3.weight"].copy()
    mx.nd.save(out, arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
