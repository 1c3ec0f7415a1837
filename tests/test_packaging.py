"""Packaging, checked fast (no build): one version, the metadata the issue asks for, the LICENSE.

These run from a checkout and from an unpacked sdist alike (`.ci/package`): the files read here
(setup.cfg, LICENSE, MANIFEST.in) are at the root of both, beside tests/. `.ci/package` builds
the sdist and wheel, runs `twine check --strict` and the sdist's whole suite.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
from importlib import metadata
from pathlib import Path

import obshell_sdk

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(obshell_sdk.__file__).parent
#: sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the text with its appendix
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def _metadata_section() -> configparser.SectionProxy:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config["metadata"]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_the_version_has_one_source_read_by_the_build():
    assert _metadata_section()["version"] == "attr: obshell_sdk._version.__version__"
    from obshell_sdk import _version

    assert obshell_sdk.__version__ == _version.__version__


def test_the_installed_distribution_claims_the_package_version():
    assert metadata.version("obshell-sdk") == obshell_sdk.__version__


def test_no_module_but_version_spells_the_version_out():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "_version.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == obshell_sdk.__version__:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, f"the version is written out again (import __version__ instead): {found}"


def test_classifiers_name_every_supported_python_and_typing():
    classifiers = set(_lines(_metadata_section()["classifiers"]))
    for minor in range(9, 14):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)


def test_the_classifiers_and_python_requires_agree():
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert config["options"]["python_requires"] == ">=3.9"
    classifiers = _lines(config["metadata"]["classifiers"])
    minors = sorted(int(c.rsplit(".", 1)[1]) for c in classifiers
                    if c.startswith("Programming Language :: Python :: 3."))
    assert minors[0] == 9


def test_project_urls_and_license_metadata():
    section = _metadata_section()
    urls = dict(
        (part.strip() for part in line.split("=", 1)) for line in _lines(section["project_urls"])
    )
    assert set(urls) >= {"Documentation", "Source", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values()), urls
    assert urls["Changelog"].endswith("/CHANGELOG.md")
    assert section["license_expression"] == "Apache-2.0"
    assert _lines(section["license_files"]) == ["LICENSE"]


def test_license_is_the_apache_2_text_unmodified():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    head = [line.strip() for line in text.splitlines()[:4] if line.strip()]
    assert head[:2] == ["Apache License", "Version 2.0, January 2004"]
    assert "APPENDIX: How to apply the Apache License to your work." in text
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256


def test_the_sdist_manifest_ships_what_its_tests_need():
    rules = _lines((ROOT / "MANIFEST.in").read_text(encoding="utf-8"))
    for rule in ("graft tests", "graft examples"):
        assert rule in rules
    included = " ".join(r for r in rules if r.startswith("include "))
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "obshell_sdk/py.typed"):
        assert name in included, name
