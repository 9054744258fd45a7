"""infra/bundling.py: the Lambda asset is assembled locally, deterministically, without Docker."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import app as cdk_app
from infra.bundling import (
    LAMBDA_DISTRIBUTIONS,
    LAMBDA_PACKAGES,
    BundlingError,
    bundle_into,
    distribution_roots,
    extension_packages,
)
from infra.config import ConfigError

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
    assert all(p.name.endswith(".cpython-311.pyc") for p in bundle.rglob("*.pyc"))


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
