#!/usr/bin/python
"""Ansible module: pack a Django project into a reproducible release bundle (controller side).

Run with ``delegate_to: localhost``. The release id is a hash of the files' paths, modes and
contents, so the same tree always gives the same id (and the same bytes), and the role deploys
a new release only when the code changed.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: django_app_bundle
short_description: Pack a project directory into a reproducible, content-addressed tarball
description:
  - Computes a release id from the files under O(src) (minus O(exclude)), and writes
    C(<dest>/<release>.tar.gz) unless it exists. Also returns the hash of the requirements file,
    which names the virtualenv the release uses.
options:
  src:
    description: Project directory.
    type: path
    required: true
  dest:
    description: Directory for the bundles.
    type: path
    required: true
  requirements:
    description: Requirements file, relative to O(src).
    type: str
    required: true
  exclude:
    description:
      - What is left out. A name (C(__pycache__)) or a suffix (C(*.pyc)) matches files and
        directories at any depth; a name with a leading slash (C(/media)) only the entry of that
        name at the top of O(src), so an app package of the same name further down is packed.
    type: list
    elements: str
    default: []
author: Django + Celery production baseline
"""

RETURN = r"""
release:
  description: Release id (first 12 hex digits of the content hash).
  type: str
  returned: always
requirements_hash:
  description: First 12 hex digits of the requirements file's SHA-256.
  type: str
  returned: always
bundle:
  description: Path of the tarball.
  type: str
  returned: always
files:
  description: Number of files packed.
  type: int
  returned: always
"""

import hashlib
import io
import os
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule


def excluded(name, patterns, top):
    """Whether the entry ``name`` is left out; ``top``: it sits at the top of the project."""
    for pattern in patterns:
        if pattern.startswith("/"):
            if top and name == pattern[1:]:
                return True
        elif name == pattern or (pattern.startswith("*") and name.endswith(pattern[1:])):
            return True
    return False


def collect(src, patterns):
    found = []
    for directory, dirnames, filenames in os.walk(src):
        top = os.path.samefile(directory, src)
        dirnames[:] = sorted(d for d in dirnames if not excluded(d, patterns, top))
        for filename in sorted(filenames):
            if excluded(filename, patterns, top):
                continue
            path = os.path.join(directory, filename)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            found.append(os.path.relpath(path, src))
    return sorted(found)


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "requirements": {"type": "str", "required": True},
            "exclude": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    src, dest = module.params["src"], module.params["dest"]
    if not os.path.isdir(src):
        module.fail_json(msg=f"django_app_source: {src} is not a directory on the controller")
    requirements = os.path.join(src, module.params["requirements"])
    if not os.path.isfile(requirements):
        module.fail_json(msg=f"django_app_requirements: {requirements} does not exist")
    if not os.path.isfile(os.path.join(src, "manage.py")):
        module.fail_json(msg=f"django_app_source: {src} has no manage.py")

    files = collect(src, module.params["exclude"])
    digest = hashlib.sha256()
    for relative in files:
        path = os.path.join(src, relative)
        executable = os.stat(path).st_mode & 0o111
        digest.update(relative.encode() + b"\0" + (b"x" if executable else b"-") + b"\0")
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    release = digest.hexdigest()[:12]
    with open(requirements, "rb") as handle:
        requirements_hash = hashlib.sha256(handle.read()).hexdigest()[:12]

    bundle = os.path.join(dest, f"{release}.tar.gz")
    result = {"release": release, "requirements_hash": requirements_hash, "bundle": bundle, "files": len(files)}
    if os.path.exists(bundle) or module.check_mode:
        module.exit_json(changed=not os.path.exists(bundle), **result)

    os.makedirs(dest, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=dest, suffix=".partial")
    with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for relative in files:
            path = os.path.join(src, relative)
            with open(path, "rb") as source:
                data = source.read()
            info = tarfile.TarInfo(relative)
            info.size = len(data)
            info.mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    os.replace(partial, bundle)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
