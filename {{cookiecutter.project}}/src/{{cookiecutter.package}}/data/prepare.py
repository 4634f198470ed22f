"""Prepare a dataset on disk: the command behind the DVC `prepare` stages.

    python -m <package>.data.prepare cifar10                      # download, check, convert (once)
    python -m <package>.data.prepare cifar10 --synthetic num_train=2000 num_test=500
    python -m <package>.data.prepare shakespeare --synthetic --root data synthetic_chars=200000

Trailing `key=value` arguments set fields of the dataset's config dataclass (`CIFAR10Config`,
`ShakespeareConfig`) and are type-checked by OmegaConf like Hydra overrides, so a typo is an error.
Running it again is a no-op once the directory verifies against its manifest; a corrupt directory is rebuilt.
Dataset modules are imported by name only when asked for, so a project generated without one of them
(the template deletes `cifar10.py` when no image baseline is chosen) still runs this command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .files import DataError, read_manifest

KNOWN = ("cifar10", "shakespeare")  # dataset modules this package may contain, each with prepare/load/Config


def available() -> tuple[str, ...]:
    """The dataset modules present in this project (found without importing them)."""
    return tuple(name for name in KNOWN if importlib.util.find_spec(f"{__package__}.{name}") is not None)


def dataset_module(name: str) -> ModuleType:
    """Import the module of dataset `name`; a clear error names the datasets this project has."""
    names = available()
    if name not in names:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(names)}")
    return importlib.import_module(f".{name}", __package__)


def make_config(module: ModuleType, root: str, synthetic: bool, overrides: list[str]) -> object:
    """The dataset's config dataclass with `root`, `synthetic` and `key=value` overrides applied (type-checked)."""
    config = OmegaConf.merge(OmegaConf.structured(module.Config), {"root": root, "synthetic": synthetic})
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"expected a key=value override, got {item!r}")
        try:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as error:  # unknown key or wrong type: one line, no traceback
            reason = str(error).splitlines()[0]
            raise ValueError(f"invalid override {item!r} for {module.Config.__name__}: {reason}") from None
    return OmegaConf.to_object(config)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.prepare",
        description="Download or generate a dataset, check it and write its manifest.",
    )
    parser.add_argument("dataset", help=f"one of: {', '.join(available())}")
    parser.add_argument("--synthetic", action="store_true", help="generate the offline synthetic twin instead")
    parser.add_argument("--root", default="data", help="parent directory of the prepared datasets (default: data)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config fields, e.g. num_train=2000")
    return parser.parse_intermixed_args(argv)  # options may come between the dataset and the overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        module = dataset_module(args.dataset)
        cfg = make_config(module, args.root, args.synthetic, args.overrides)
        directory = Path(module.prepare(cfg))
        manifest = read_manifest(directory)
    except (DataError, ValueError) as error:  # DataError is a ValueError; both are one-line user errors
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{directory}  ({manifest.dataset}, {'synthetic' if manifest.synthetic else manifest.source})")
    for name, record in manifest.files.items():
        print(f"  {name:<20} {record.bytes:>12,} bytes  sha256 {record.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
