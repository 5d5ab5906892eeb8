"""`bortconv package ARTIFACT_DIR --format triton|ovms -o REPO [--name NAME] [--force]`."""

from __future__ import annotations

import argparse
import json
import sys

from bortconv.config import PACKAGE_FORMATS as FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument("artifact", metavar="ARTIFACT_DIR", help="an artifact directory written by bortconv export")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="format",
                        help="triton: config.pbtxt + NAME/1/model; ovms: config.json + NAME/1/model.xml (and "
                             "text-in models where the artifact has the OpenVINO tokenizer)")
    parser.add_argument("-o", "--output", required=True, metavar="REPO", help="repository directory (new or empty)")
    parser.add_argument("--name", help="model name (default: the artifact directory's name)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty REPO")
    parser.add_argument("--json", action="store_true", help="machine-readable summary")


def run(args: argparse.Namespace) -> int:
    """Write the repository; 0 on success (errors are raised as BortconvError for the CLI to report)."""
    from bortconv.package.repository import package_artifact

    result = package_artifact(args.artifact, args.output, fmt=args.format, name=args.name, force=args.force)
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
        return 0
    print(f"{result['format']} repository {result['repo']} ({result['runtime']}, {result['task']}):")
    for model, info in result["models"].items():
        print(f"  {model}: {', '.join(info['files'])}")
    return 0
