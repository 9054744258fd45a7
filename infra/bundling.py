"""Lambda code, bundled on this machine: no Docker at synth time (DESIGN §7).

The Lambda asset is our own packages (``ocpp_core/``, ``lambdas/``, extension packages) copied
from the repository, plus the pure-Python runtime distributions copied from the environment that
runs ``cdk synth`` (the project's virtualenv, pinned in ``pyproject.toml``). boto3 is left out:
the Lambda runtime provides it.

The asset hash is computed from the bundled files (``AssetHashType.OUTPUT``), so the same
sources give the same hash on every machine, and the repository (with its ``.venv``) is never
fingerprinted.

Which Lambda runtime (:func:`choose_python`): the one of the interpreter that bundles, when Lambda
has it (3.11 to 3.14), and the bundle then ships that interpreter's bytecode. With the context
value ``lambda_python`` pinned to another runtime, or an interpreter newer than every Lambda
runtime CDK knows, the bundle ships sources only (bytecode is specific to one Python version): the
code still runs, each cold start compiles what it imports. Older than 3.11: a one-line error.
"""

from __future__ import annotations

import compileall
import importlib.metadata
import py_compile
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from infra.config import ConfigError

#: Our packages, copied from the repository root.
LAMBDA_PACKAGES: tuple[str, ...] = ("ocpp_core", "lambdas")

#: Installed distributions the handlers import at run time (and what those require).
#: ``ocpp`` is only there for its JSON schema files; nothing imports it.
LAMBDA_DISTRIBUTIONS: tuple[str, ...] = (
    "ocpp",
    "fastjsonschema",
    "aws-lambda-powertools",
    "jmespath",
    "typing_extensions",
    # the chargers' CA (lambdas/certificates): pure Python
    "asn1crypto",
    "ecdsa",
    "six",
)

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".pytest_cache")
# From a distribution's metadata directory only METADATA and the licence files travel: the rest
# records how and where this machine installed it, which would change the asset hash per machine.
_SKIP_METADATA = shutil.ignore_patterns("RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "__pycache__")


class BundlingError(RuntimeError):
    """The Lambda asset could not be assembled (a package or distribution is missing)."""


def distribution_roots(name: str) -> list[Path]:
    """The top-level packages, modules and metadata directory of an installed distribution.

    Read from the distribution's RECORD, so nothing is imported (importing ``ocpp`` would pull
    in its own dependencies, which the Lambda does not need).
    """
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BundlingError(f"distribution {name!r} is not installed in this environment: pip install -e .") from exc
    tops: set[str] = set()
    for file in dist.files or ():
        first = PurePosixPath(file).parts[0]
        # '..' entries are console scripts in bin/; __pycache__ of single-module distributions
        if first in ("..", "__pycache__"):
            continue
        tops.add(first)
    if not tops:
        raise BundlingError(f"distribution {name!r} lists no files (installed without a RECORD?)")
    return [Path(str(dist.locate_file(top))) for top in sorted(tops)]


def copy_tree(source: Path, destination: Path) -> None:
    if source.is_dir():
        ignore = _SKIP_METADATA if source.name.endswith(".dist-info") else _SKIP
        shutil.copytree(source, destination, ignore=ignore, dirs_exist_ok=True)
    else:
        shutil.copy2(source, destination)


PythonVersion = tuple[int, int]

#: Python versions that are Lambda runtimes (oldest first); 3.11 is the oldest the code runs on.
LAMBDA_PYTHONS: dict[PythonVersion, lambda_.Runtime] = {
    (3, 11): lambda_.Runtime.PYTHON_3_11,
    (3, 12): lambda_.Runtime.PYTHON_3_12,
    (3, 13): lambda_.Runtime.PYTHON_3_13,
    (3, 14): lambda_.Runtime.PYTHON_3_14,
}
OLDEST_PYTHON: PythonVersion = min(LAMBDA_PYTHONS)
NEWEST_PYTHON: PythonVersion = max(LAMBDA_PYTHONS)


@dataclass(frozen=True, slots=True)
class PythonChoice:
    """The Lambda runtime's Python version, and whether the bundle carries bytecode for it."""

    version: PythonVersion
    bytecode: bool

    @property
    def runtime(self) -> lambda_.Runtime:
        return LAMBDA_PYTHONS[self.version]

    @property
    def runtime_name(self) -> str:
        return f"python{self.version[0]}.{self.version[1]}"


def _dotted(version: PythonVersion) -> str:
    return f"{version[0]}.{version[1]}"


def choose_python(interpreter: PythonVersion, pinned: PythonVersion | None = None) -> PythonChoice:
    """Pure: the runtime for code bundled by ``interpreter`` (``sys.version_info[:2]``).

    Raises :class:`ConfigError` (one line) for an interpreter older than 3.11 or a pinned
    version that is no Lambda runtime.
    """
    if interpreter < OLDEST_PYTHON:
        raise ConfigError(
            f"Python {_dotted(OLDEST_PYTHON)} or newer is needed to synthesize (this is Python {_dotted(interpreter)})"
        )
    if pinned is not None:
        if pinned not in LAMBDA_PYTHONS:
            allowed = ", ".join(_dotted(v) for v in LAMBDA_PYTHONS)
            raise ConfigError(f"invalid context value lambda_python={_dotted(pinned)}: expected one of {allowed}")
        return PythonChoice(pinned, bytecode=pinned == interpreter)
    if interpreter in LAMBDA_PYTHONS:
        return PythonChoice(interpreter, bytecode=True)
    # Newer than any runtime CDK knows: the newest one runs the sources.
    return PythonChoice(NEWEST_PYTHON, bytecode=False)


def current_python(pinned: PythonVersion | None = None) -> PythonChoice:
    return choose_python((sys.version_info[0], sys.version_info[1]), pinned)


def bundle_into(
    output_dir: Path,
    *,
    repo_root: Path,
    packages: Iterable[str] = LAMBDA_PACKAGES,
    distributions: Iterable[str] = LAMBDA_DISTRIBUTIONS,
    bytecode: bool = True,
) -> None:
    """Copy the Lambda's code into ``output_dir`` (which exists and is empty).

    ``bytecode``: compile it with this interpreter (only right when it is the runtime's version).
    """
    for package in packages:
        source = repo_root / package
        if not (source / "__init__.py").is_file() and not source.with_suffix(".py").is_file():
            raise BundlingError(f"package {package!r} not found under {repo_root}")
        if source.is_dir():
            copy_tree(source, output_dir / package)
        else:
            copy_tree(source.with_suffix(".py"), output_dir / (package + ".py"))
    for name in distributions:
        for root in distribution_roots(name):
            if not root.exists():
                raise BundlingError(f"{root} of distribution {name!r} is missing on disk")
            copy_tree(root, output_dir / root.name)
    if bytecode:
        _precompile(output_dir)


def _precompile(output_dir: Path) -> None:
    """Ship bytecode: the Lambda file system is read-only, so without it every cold start compiles.

    Unchecked-hash .pyc files are used without comparing source mtimes, which the asset zip
    does not preserve; they are deterministic, so the asset hash stays stable.
    """
    ok = compileall.compile_dir(
        str(output_dir),
        ddir="/var/task",  # where Lambda unpacks the code: tracebacks name real paths, builds match
        quiet=2,
        workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise BundlingError(f"could not byte-compile the Lambda bundle in {output_dir}")


@jsii.implements(cdk.ILocalBundling)
class LocalPythonBundler:
    """CDK's hook for bundling without Docker: ``try_bundle`` returns True once it has copied."""

    def __init__(
        self, *, repo_root: Path, packages: Sequence[str], distributions: Sequence[str], bytecode: bool
    ) -> None:
        self.repo_root = repo_root
        self.packages = tuple(packages)
        self.distributions = tuple(distributions)
        self.bytecode = bytecode

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:  # options: unused, CDK passes them
        bundle_into(
            Path(output_dir),
            repo_root=self.repo_root,
            packages=self.packages,
            distributions=self.distributions,
            bytecode=self.bytecode,
        )
        return True


def extension_packages(repo_root: Path, extensions: Iterable[str]) -> tuple[str, ...]:
    """Top-level packages holding the configured extension modules, to be bundled too.

    An extension must live in the repository (as ``my_ext/`` or ``my_ext.py``), since that is all
    the Lambda gets; anything else is a configuration error found before synthesis.
    """
    found: list[str] = []
    for module in extensions:
        top = module.split(".", 1)[0]
        if top in LAMBDA_PACKAGES or top in found:
            continue
        if not ((repo_root / top / "__init__.py").is_file() or (repo_root / f"{top}.py").is_file()):
            raise ConfigError(
                f"invalid context value extensions={module}: no package or module {top!r} in {repo_root} to bundle"
            )
        found.append(top)
    return tuple(found)


def lambda_code(*, repo_root: Path, python: PythonChoice, extra_packages: Sequence[str] = ()) -> lambda_.Code:
    """One asset for all the handlers: they share the packages and the dependencies."""
    bundler = LocalPythonBundler(
        repo_root=repo_root,
        packages=(*LAMBDA_PACKAGES, *extra_packages),
        distributions=LAMBDA_DISTRIBUTIONS,
        bytecode=python.bytecode,
    )
    return lambda_.Code.from_asset(
        str(repo_root),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            # Required by the API; never pulled, because the local bundler always succeeds.
            image=python.runtime.bundling_image,
            local=bundler,
        ),
    )
