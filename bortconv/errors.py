"""The one place bortconv's errors live.

Every error the CLI can print is a subclass of :class:`BortconvError`. Each carries an exit code (2 for bad
input, 1 for a failed check) and a one-line message that names the file, tensor or option and what is wrong.
The catalogue in docs/errors.md is checked against :data:`CATALOGUE` by a test.
"""

from __future__ import annotations


def shown(text: str, limit: int = 120) -> str:
    """`text` (a tensor or token name read from a file) made safe for a one-line message.

    Names come from the input: one with a newline, an ANSI escape or a bidi override would break the
    one-line contract or rewrite the user's terminal, so those are shown escaped (Python repr); very long
    names are cut to `limit` characters."""
    out = text if text.isprintable() else repr(text)
    return out if len(out) <= limit else out[:limit] + f"...({len(text)} chars)"


class BortconvError(Exception):
    """Base class: a failure bortconv understands and reports in one line."""

    exit_code: int = 2
    #: what the user can do about it (shown in docs/errors.md, the error catalogue)
    advice: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(BortconvError):
    """A path, option or argument given by the user cannot be used.

    `option`: the API parameter the message names (its first word); the CLI shows that word as its flag."""

    advice = "Check the path or option named in the message."

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option

    def for_flag(self, flag: str) -> str:
        """The message as the CLI shows it: the parameter's name, where it leads the message, replaced by `flag`."""
        if self.option and self.message.startswith(self.option):
            return flag + self.message[len(self.option):]
        return self.message


class CheckpointFormatError(BortconvError):
    """A `.params` file is not a well-formed MXNet NDArray file."""

    advice = "The file is not a complete MXNet .params file; re-download or re-save it."


class MappingError(BortconvError):
    """Tensors are missing, unexpected, or of the wrong shape for a Bort/BERT model."""

    advice = "The checkpoint is not a Bort model this tool knows; the message lists the offending tensors."


class BadWeightsError(BortconvError):
    """A tensor holds NaN or Inf values."""

    advice = "The checkpoint is corrupt or was saved after training diverged."


class OutputExistsError(BortconvError):
    """The output directory already holds files."""

    advice = "Choose an empty or new directory, or pass --force to replace it."


class TokenizerError(BortconvError):
    """Vocabulary or merges files cannot make a Bort tokenizer."""

    advice = "Pass the gluonnlp vocabulary JSON and the GPT-2 merges file that belong to the checkpoint."


class ExportError(BortconvError):
    """An export step failed (the exporter, the optimizer or the compiler refused the model)."""

    exit_code = 1
    advice = "Re-run with --debug and report the traceback."


class ParityError(BortconvError):
    """An artifact's outputs differ from its reference beyond the tolerance."""

    exit_code = 1
    advice = "The artifact does not compute what the source computes; it was not kept."


class IntegrityError(BortconvError):
    """An artifact's files do not match the sha256 hashes its manifest records (or its reference's copies)."""

    exit_code = 1
    advice = "A file of the artifact was changed, replaced or is missing; re-export it or restore the files."


class ChangedArtifactError(BortconvError):
    """An artifact given to quantize or package is not what its manifest lists (a file changed, missing or unlisted)."""

    advice = ("`bortconv validate` on it lists every difference; re-export it or restore its files. A changed file "
              "is not carried into a new artifact with fresh hashes, where validate could no longer see it.")


class AccuracyGateError(BortconvError):
    """No int8 configuration keeps the model's outputs within the fidelity gate."""

    exit_code = 1
    advice = "Calibrate on text like yours (--calibration), allow more samples, or deploy fp32."


class TrainingError(BortconvError):
    """A fine-tuning training failed on every attempt (its worker died or it raised each time)."""

    exit_code = 1
    advice = ("The message names the configuration and the cause; the finished trainings are kept: fix the cause "
              "and run the same command with --resume.")


class MemoryBudgetError(BortconvError):
    """The run needs, or reached, more resident memory than --max-memory allows."""

    advice = ("Raise --max-memory to at least the figure in the message (docs/export.md explains the estimate), "
              "or export on a larger machine.")


class MissingDependencyError(BortconvError):
    """An optional dependency needed for this command is not installed."""

    advice = "Install the extra named in the message, e.g. pip install 'bortconv[export]'."


#: every error class the CLI can print, with its exit code (docs/errors.md mirrors this)
CATALOGUE: tuple[type[BortconvError], ...] = (
    InputError,
    CheckpointFormatError,
    MappingError,
    BadWeightsError,
    OutputExistsError,
    ChangedArtifactError,
    TokenizerError,
    MemoryBudgetError,
    MissingDependencyError,
    ExportError,
    ParityError,
    IntegrityError,
    AccuracyGateError,
    TrainingError,
)

#: what the CLI prints that is not a BortconvError: (stderr line, exit code, what it means / what to do)
OTHER_OUTCOMES: tuple[tuple[str, int, str], ...] = (
    ("usage error from the argument parser (unknown command, option or choice)", 2,
     "Run `bortconv COMMAND --help`."),
    ("`bortconv: interrupted; nothing was left behind` (Ctrl-C or SIGTERM)", 130,
     "Nothing to clean up: the temporary directory was removed and the output directory is as it was."),
    ("`bortconv: interrupted; DIR keeps N finished trainings: ...` (finetune)", 130,
     "The output directory is as it was; the same command with --resume continues the run from DIR."),
    ("`bortconv: internal error: ...`", 3,
     "A bug in bortconv: re-run with --debug and report the traceback."),
)


def catalogue_markdown() -> str:
    """The error catalogue of docs/errors.md, generated from :data:`CATALOGUE` and :data:`OTHER_OUTCOMES`.

    Every error is one line on stderr, ``bortconv: error: <message>``; --debug adds the traceback."""
    rows = ["| error | exit | when | what to do |", "|---|---|---|---|"]
    for cls in CATALOGUE:
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append(f"| `{cls.__name__}` | {cls.exit_code} | {doc} | {cls.advice} |")
    for what, code, advice in OTHER_OUTCOMES:
        rows.append(f"| {what} | {code} | | {advice} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m bortconv.errors: print the catalogue for docs/errors.md
    print(catalogue_markdown())
