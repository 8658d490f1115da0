"""One validator for every custom resource: the vendored CRDs under deploy/crds.

Each CRD file found there is indexed by (group, version, kind); a rendered document of
that kind is validated against the version's ``openAPIV3Schema`` with ``jsonschema``.
A structural CRD schema leaves objects open (the API server prunes what it does not
declare), so an object with ``properties`` and no ``additionalProperties`` and no
``x-kubernetes-preserve-unknown-fields`` is closed here: a misspelled field fails.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import yaml

from pipeline.settings import PROJECT_ROOT

CRDS = PROJECT_ROOT / "deploy" / "crds"


def closed(schema: Any) -> Any:
    """The schema with every declared object closed to undeclared fields."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> closed openAPIV3Schema, for every vendored CRD."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*/*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (spec["group"], version["name"], spec["names"]["kind"])
                found[key] = closed(version["schema"]["openAPIV3Schema"])
    return found


def is_core(api_version: str) -> bool:
    """Kinds kubernetes-validate knows: the core group and the *.k8s.io groups."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def problems(document: dict[str, Any]) -> list[str]:
    """What is wrong with one rendered document; empty for a core kind (checked elsewhere)."""
    api_version, kind = document.get("apiVersion", ""), document.get("kind", "")
    if is_core(api_version):
        return []
    group, _, version = api_version.rpartition("/")
    schema = schemas().get((group, version, kind))
    name = document.get("metadata", {}).get("name", "?")
    if schema is None:
        return [f"{kind}/{name}: no vendored CRD for {api_version} {kind} in {CRDS}"]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{kind}/{name}: {'.'.join(str(p) for p in error.absolute_path) or '<root>'}: "
        f"{error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    ]
