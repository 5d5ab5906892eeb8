"""The export pipeline: orchestration of the stages (converters -> quantize -> validate's parity) into artifacts."""
