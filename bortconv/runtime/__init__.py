"""The torch-free runtime: what serving, packaging and `validate` on a device need.

- :mod:`.bort`: ONNX Runtime and OpenVINO sessions, the tokenizers backends, :class:`~.bort.BortRuntime`;
- :mod:`.loaders`: the stock ways users load artifacts, and the precision each infers in here;
- :mod:`.pair_truncation`: Bort's rule for cutting pairs; :mod:`.cpu`: the CPU's model and flags.
"""
