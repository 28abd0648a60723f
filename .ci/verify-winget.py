#!/usr/bin/env python3
"""Checks the winget manifests packaging/build.sh wrote (target/dist/winget/<version>/).

Each file is validated against Microsoft's JSON schema of its ManifestType
(packaging/winget/schema/), more strictly than the schema itself: a key the schema does not name
is refused, since winget ignores a misspelt key and the field is silently lost. Then what only
the MSI can tell: the SHA-256 is the MSI's, the product code is the MSI's, the upgrade code is the
one of packaging/autopilot-wizard.wxs, the three files agree on the package and the version. A
manifest with a misspelt key must fail, or this check proves nothing.

Usage: .ci/verify-winget.py DIST_DIR VERSION
"""

import copy
import hashlib
import json
import pathlib
import re
import subprocess
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "packaging" / "winget" / "schema"


def fail(message):
    print(f"winget: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def strict(schema):
    """The schema with additionalProperties: false on every object that lists its properties."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def validator(manifest_type, version):
    name = {"version": "version", "installer": "installer", "defaultLocale": "defaultLocale"}[manifest_type]
    path = SCHEMAS / f"manifest.{name}.{version}.json"
    if not path.exists():
        fail(f"no schema {path.name} for ManifestType {manifest_type} {version}")
    schema = strict(json.loads(path.read_text(encoding="utf-8")))
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def errors(doc):
    v = validator(doc.get("ManifestType"), doc.get("ManifestVersion"))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in v.iter_errors(doc)]


def msi_property(msi, name):
    out = subprocess.run(["msiinfo", "export", str(msi), "Property"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.partition("\t")
        if key == name:
            return value.strip()
    fail(f"no {name} in {msi.name}'s Property table")


def main():
    dist, version = pathlib.Path(sys.argv[1]), sys.argv[2]
    folder = dist / "winget" / version
    files = sorted(folder.glob("*.yaml"))
    if len(files) != 3:
        fail(f"expected 3 manifests in {folder}, found {[f.name for f in files]}")
    docs = {}
    for f in files:
        # YAML 1.1 would read an unquoted 1.10 as a number; winget reads strings.
        doc = yaml.load(f.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        problems = errors(doc)
        if problems:
            fail(f"{f.name} does not match its schema:\n  " + "\n  ".join(problems))
        docs[doc["ManifestType"]] = (f, doc)
        print(f"winget: {f.name}: {doc['ManifestType']} {doc['ManifestVersion']} matches the schema")
    if set(docs) != {"version", "installer", "defaultLocale"}:
        fail(f"manifest types {sorted(docs)}")
    for _, doc in docs.values():
        if (doc["PackageIdentifier"], doc["PackageVersion"]) != ("AutopilotWizard.AutopilotWizard", version):
            fail(f"{doc['ManifestType']}: package {doc['PackageIdentifier']} {doc['PackageVersion']}")

    installer = docs["installer"][1]
    msi = dist / f"autopilot-wizard-{version}-x64.msi"
    sha = hashlib.sha256(msi.read_bytes()).hexdigest().upper()
    product_code = msi_property(msi, "ProductCode")
    upgrade_code = msi_property(msi, "UpgradeCode")
    wxs = (ROOT / "packaging" / "autopilot-wizard.wxs").read_text(encoding="utf-8")
    if upgrade_code.strip("{}").upper() not in wxs.upper():
        fail(f"the MSI's UpgradeCode {upgrade_code} is not the one in autopilot-wizard.wxs")
    for i, entry in enumerate(installer["Installers"]):
        if entry["InstallerSha256"].upper() != sha:
            fail(f"Installers[{i}].InstallerSha256 {entry['InstallerSha256']} is not the MSI's {sha}")
        if not entry["InstallerUrl"].endswith("/" + msi.name):
            fail(f"Installers[{i}].InstallerUrl {entry['InstallerUrl']} does not name {msi.name}")
    scopes = sorted(e["Scope"] for e in installer["Installers"])
    if scopes != ["machine", "user"]:
        fail(f"installer scopes {scopes}")
    arp = installer["AppsAndFeaturesEntries"][0]
    for key, want in (("ProductCode", product_code), ("UpgradeCode", upgrade_code)):
        if arp[key].upper() != want.upper():
            fail(f"AppsAndFeaturesEntries {key} {arp[key]} is not the MSI's {want}")
    if installer["ProductCode"].upper() != product_code.upper():
        fail(f"ProductCode {installer['ProductCode']} is not the MSI's {product_code}")
    print(f"winget: SHA-256, product code {product_code} and upgrade code {upgrade_code} are the MSI's")

    # The check itself: a misspelt key and a short hash must be refused.
    broken = copy.deepcopy(installer)
    broken["Installers"][0]["InstallerSha265"] = broken["Installers"][0].pop("InstallerSha256")
    broken["Installers"][1]["InstallerSha256"] = sha[:10]
    found = errors(broken)
    if not any("InstallerSha265" in e for e in found) or not any(sha[:10] in e for e in found):
        fail(f"a broken manifest passed the schema check: {found}")
    print("winget: a misspelt key and a short hash are refused (the check can fail)")


if __name__ == "__main__":
    main()
