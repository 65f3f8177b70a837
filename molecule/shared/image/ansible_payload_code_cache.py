"""Lab and test images only (scripts/build_images.py): reuse the compiled code of Ansible's payloads.

Every Ansible task runs a fresh interpreter on the host that imports ansible.module_utils from a
zip in a new temporary directory (AnsiballZ). zipimport cannot keep bytecode, so Python compiles
the same source again for every task, and zipimport even compiles each module twice (once to
name its file). Measured on a trixie container: 340 ms of CPU per `stat` task, 230 ms with this
hook; CPU, not waiting, is what bounds the test suite on a 2-core machine.

The hook keeps the compiled code of each source file, keyed by the interpreter, the module name
and the source itself, under a directory only root can read or write, and reuses it: what runs
is what Ansible sent. It serves root only (a cache another user could write would be a way into
root) and AnsiballZ payloads only; anything unexpected falls back to the normal import. The one
visible difference: a traceback may name the temporary directory of the task that compiled the
code first. Production hosts never get it.
"""

# Loaded by every interpreter that starts on the host: only what Python has already imported at
# start-up (os, sys, zipimport) is imported here; the rest when a payload is imported.
import os
import sys
import zipimport

_CACHE = "/var/cache/ansible-payload-code"
_TAG = sys.implementation.cache_tag or "python"
_ZIP = "_payload.zip"


def _in_payload(path):
    """Whether ``path`` is an AnsiballZ payload (.../ansible_<module>_payload.zip) or a package in it."""
    end = path.find(_ZIP)
    return end > 0 and path.rfind("/ansible_", 0, end) >= 0 and path[end + len(_ZIP) : end + len(_ZIP) + 1] in ("", "/")


class _CachingZipImporter(zipimport.zipimporter):
    def get_filename(self, fullname):
        # zipimport compiles the module to name its file; the name is known without that.
        relative = self.prefix + fullname.rpartition(".")[2]
        try:
            relative += "/__init__.py" if self.is_package(fullname) else ".py"
            # Python 3.12+ reads the directory lazily (_get_files); 3.11 keeps it in _files.
            files = self._get_files() if hasattr(self, "_get_files") else self._files
            known = relative in files
        except (ImportError, AttributeError):
            known = False
        return os.path.join(self.archive, relative) if known else super().get_filename(fullname)

    def get_code(self, fullname):
        import hashlib
        import marshal

        source = self.get_source(fullname)
        if source is None:
            return super().get_code(fullname)
        digest = hashlib.sha256(f"{_TAG}\0{fullname}\0{source}".encode()).hexdigest()
        path = os.path.join(_CACHE, digest[:2], digest)
        try:
            with open(path, "rb") as cached:
                return marshal.load(cached)
        except (OSError, EOFError, ValueError, TypeError):
            code = super().get_code(fullname)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            partial = f"{path}.{os.getpid()}"
            with open(partial, "wb") as out:
                marshal.dump(code, out)
            os.replace(partial, path)
        except OSError:
            # A cache that cannot be written costs the next task a compile, nothing else.
            return code
        return code


def _hook(path):
    if _in_payload(path):
        return _CachingZipImporter(path)
    raise ImportError(path)


if os.geteuid() == 0:
    sys.path_hooks.insert(0, _hook)
