"""infra/bundling.py: the Lambda asset is assembled locally, deterministically, without Docker."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

import app as cdk_app
from infra.bundling import (
    LAMBDA_DISTRIBUTIONS,
    LAMBDA_PACKAGES,
    BundlingError,
    PythonChoice,
    bundle_into,
    choose_python,
    current_python,
    distribution_roots,
    extension_packages,
)
from infra.config import ConfigError, StageConfig

REPO_ROOT = cdk_app.REPO_ROOT


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    bundle_into(out, repo_root=REPO_ROOT)
    return out


def test_the_bundle_has_our_packages_and_the_runtime_dependencies(bundle: Path) -> None:
    for package in LAMBDA_PACKAGES:
        assert (bundle / package / "__init__.py").is_file()
    assert (bundle / "lambdas" / "rules.py").is_file()
    assert (bundle / "ocpp_core" / "keys.py").is_file()
    assert (bundle / "ocpp").is_dir()  # for its JSON schemas
    assert list((bundle / "ocpp").rglob("*.json")), "the OCA schemas ship inside the ocpp package"
    assert (bundle / "fastjsonschema" / "__init__.py").is_file()
    assert (bundle / "aws_lambda_powertools" / "__init__.py").is_file()
    assert (bundle / "jmespath" / "__init__.py").is_file()
    assert (bundle / "typing_extensions.py").is_file()


def test_the_bundle_leaves_out_what_the_runtime_has_or_does_not_need(bundle: Path) -> None:
    top = {p.name for p in bundle.iterdir()}
    assert not top & {"boto3", "botocore", "tests", "infra", "fargate_bridge", ".venv", "cdk.out", "bin"}
    # bytecode is ours, freshly compiled for the runtime: never copied from a working tree
    assert all(p.name.endswith(f".{sys.implementation.cache_tag}.pyc") for p in bundle.rglob("*.pyc"))


def test_the_bundle_ships_unchecked_hash_bytecode_for_every_module(bundle: Path) -> None:
    import importlib.util

    for source in (bundle / "lambdas" / "message_processor.py", bundle / "ocpp_core" / "processor.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.is_file(), cached
        flags = int.from_bytes(cached.read_bytes()[4:8], "little")
        assert flags == 0b01, "unchecked-hash pyc: used at cold start whatever the file mtimes are"
    # what differs between machines' installs of the same wheel
    assert not [p for p in bundle.glob("*.dist-info/*") if p.name in ("RECORD", "INSTALLER", "direct_url.json")]
    metadata_dirs = list(bundle.glob("*.dist-info"))
    assert metadata_dirs and all((d / "METADATA").is_file() for d in metadata_dirs)  # names, versions, licences


def test_bundling_twice_gives_the_same_files(bundle: Path, tmp_path: Path) -> None:
    bundle_into(tmp_path, repo_root=REPO_ROOT)
    assert tree_digest(tmp_path) == tree_digest(bundle)


def test_distributions_are_located_without_importing_them() -> None:
    for name in LAMBDA_DISTRIBUTIONS:
        roots = distribution_roots(name)
        assert roots and all(root.exists() for root in roots)
    assert [root.name for root in distribution_roots("typing_extensions") if root.suffix == ".py"] == [
        "typing_extensions.py"
    ]


def test_a_missing_distribution_or_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BundlingError, match="not-a-real-distribution"):
        distribution_roots("not-a-real-distribution")
    with pytest.raises(BundlingError, match="nope"):
        bundle_into(tmp_path, repo_root=REPO_ROOT, packages=("nope",), distributions=())


def test_extension_modules_must_live_in_the_repository(tmp_path: Path) -> None:
    (tmp_path / "my_ext").mkdir()
    (tmp_path / "my_ext" / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("")
    assert extension_packages(tmp_path, ("my_ext.hooks", "single", "lambdas.x", "my_ext")) == ("my_ext", "single")
    with pytest.raises(ConfigError, match=r"extensions=elsewhere\.hooks"):
        extension_packages(tmp_path, ("elsewhere.hooks",))


# --- which Python the Lambdas run (README and docs promise any Python 3.11 or newer) ------------


@pytest.mark.parametrize("minor", [11, 12, 13, 14])
def test_any_lambda_python_synthesizes_for_its_own_runtime_with_bytecode(minor: int) -> None:
    choice = choose_python((3, minor))
    assert choice == PythonChoice((3, minor), bytecode=True)
    assert choice.runtime_name == f"python3.{minor}" == choice.runtime.name


def test_this_interpreter_picks_its_own_runtime() -> None:
    assert current_python().runtime_name == f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert current_python().bytecode


def test_a_python_newer_than_every_runtime_ships_sources_to_the_newest() -> None:
    assert choose_python((3, 15)) == PythonChoice((3, 14), bytecode=False)


def test_a_pinned_runtime_ships_bytecode_only_when_it_is_this_python() -> None:
    assert choose_python((3, 12), pinned=(3, 11)) == PythonChoice((3, 11), bytecode=False)
    assert choose_python((3, 11), pinned=(3, 11)) == PythonChoice((3, 11), bytecode=True)
    with pytest.raises(ConfigError, match=r"^invalid context value lambda_python=3\.9: expected one of 3\.11, "):
        choose_python((3, 11), pinned=(3, 9))


@pytest.mark.parametrize("version", [(3, 10), (3, 8)])
def test_an_older_python_is_one_line_saying_what_is_needed(version: tuple[int, int]) -> None:
    with pytest.raises(ConfigError) as caught:
        choose_python(version)
    assert str(caught.value) == f"Python 3.11 or newer is needed to synthesize (this is Python 3.{version[1]})"


def test_lambda_python_is_a_context_value() -> None:
    stages = {"dev": {}}
    assert StageConfig.from_context({"stages": stages}).lambda_python is None
    assert StageConfig.from_context({"stages": stages, "lambda_python": "3.12"}).lambda_python == (3, 12)
    with pytest.raises(ConfigError, match=r"lambda_python=3\.12\.1"):
        StageConfig.from_context({"stages": stages, "lambda_python": "3.12.1"})


def test_a_sources_only_bundle_has_no_bytecode(tmp_path: Path) -> None:
    bundle_into(tmp_path, repo_root=REPO_ROOT, distributions=("jmespath",), bytecode=False)
    assert (tmp_path / "ocpp_core" / "processor.py").is_file()
    assert not list(tmp_path.rglob("*.pyc")) and not list(tmp_path.rglob("__pycache__"))
