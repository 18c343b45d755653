"""Where an experiment's code comes from: load it from a spec, hash it, find it again later.

A spec is one of
  * a registered name (``lab.registry``: the catalogue and entry-point plug-ins);
  * a path to a ``.py`` file, or to a package directory, that defines a module-level ``EXPERIMENT``;
  * ``package.module:ATTR`` (an importable module; the current directory is searched too).

A file or package directory is imported under a synthetic module name that depends only on
its absolute path (``_petridish_user_<stem>_<hash of path>``), so the same file gets the same
name in every process. Experiments loaded here pickle as a reference to their source plus
their fields (``copyreg``, honoured by ``pickle``, multiprocessing and Ray's cloudpickle): a
spawned or Ray worker re-imports the file from its recorded path, checks that its hash is
still the one the driver loaded, and only then unpickles the experiment's functions.

``source_info(exp)`` is what a run records in ``provenance["source"]``: the module, the file
(the directory for a package) and the SHA-256 of the source (a package: every ``.py`` file
under it, sorted by relative path). ``experiment_for(record)`` finds a stored run's
experiment again from that record, else by its registered name.
"""
from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import importlib
import importlib.util
import os
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from petridish.errors import PetridishError
from petridish.lab import registry
from petridish.lab.experiment import Experiment

PREFIX = "_petridish_user_"          # synthetic module names of experiments loaded from a path
ATTR = "EXPERIMENT"


@dataclass(frozen=True)
class SourceRef:
    """Enough to import an experiment's module again in another process (picklable)."""

    module: str                       # module name (synthetic for a path)
    path: str                         # absolute path: the .py file, or the package directory
    sha256: str
    from_path: bool                   # loaded by path (True) or imported by module name (False)
    root: str | None = None           # a sys.path entry the module needs (module specs), else None


_loaded: dict[int, tuple[Experiment, SourceRef]] = {}   # id(exp) -> (exp, where it came from); keeps exp alive


# ---------------------------------------------------------------------------------------------- hashing

def _py_files(path: Path) -> list[Path]:
    """A package directory's .py files, sorted by relative path."""
    return sorted((p for p in path.rglob("*.py") if "__pycache__" not in p.parts),
                  key=lambda p: p.relative_to(path).as_posix())


def source_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a .py file (as `sha256sum` prints it), or of every .py file of a package
    directory (relative names and contents, NUL-separated)."""
    root = Path(path)
    if not root.is_dir():
        return hashlib.sha256(root.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in _py_files(root):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- loading

def synthetic_name(path: Path) -> str:
    """The module name a file or package directory is imported under: the same in every process."""
    stem = re.sub(r"\W", "_", path.stem if path.is_file() else path.name) or "exp"
    return f"{PREFIX}{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"


def _exec_path(path: Path, sha: str) -> ModuleType:
    """Import the file (or package directory) at ``path`` under its synthetic name, unless the
    module of that name already holds this exact source."""
    name = synthetic_name(path)
    old = sys.modules.get(name)
    if old is not None and getattr(old, "__petridish_source__", None) == sha:
        return old
    for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[k]            # an edited file is imported afresh
    is_pkg = path.is_dir()
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py" if is_pkg else path,
        submodule_search_locations=[str(path)] if is_pkg else None)
    module = importlib.util.module_from_spec(spec)
    module.__petridish_source__ = sha
    parent = str(path.parent)         # sibling modules import as they would under `python file.py`
    if parent not in sys.path:
        sys.path.append(parent)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _module_from_path(spec: str) -> tuple[ModuleType, SourceRef]:
    path = Path(spec).expanduser().resolve()
    if not path.exists():
        raise PetridishError(f"The experiment file '{spec}' does not exist. Give a path to a .py file or a "
                             "package directory, a registered name (`petridish list`), or package.module:ATTR.")
    if path.is_dir() and not (path / "__init__.py").is_file():
        raise PetridishError(f"The directory '{spec}' is not a Python package (no __init__.py). Give a .py file "
                             "or a package directory that defines EXPERIMENT.")
    if path.is_file() and path.suffix != ".py":
        raise PetridishError(f"The experiment file '{spec}' must be a .py file or a package directory. "
                             f"Got a '{path.suffix or 'no'}' suffix.")
    sha = source_sha256(path)
    module = _exec_path(path, sha)
    return module, SourceRef(module.__name__, str(path), sha, from_path=True)


def _import_module(name: str, root: str | None = None) -> ModuleType:
    """Import ``name``; if it is not found, also look in ``root`` (default: the current directory)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        extra = root or os.getcwd()
        if extra in sys.path or (e.name and not name.startswith(e.name)):
            raise                     # a missing dependency of the module, not the module itself
        sys.path.append(extra)
        return importlib.import_module(name)


def _module_ref(module: ModuleType) -> SourceRef:
    f = getattr(module, "__file__", None)
    if not f:
        raise PetridishError(f"The module '{module.__name__}' has no source file, so its code cannot be "
                             "recorded. Put the experiment in a .py file.")
    path = Path(f).resolve()
    if path.name == "__init__.py":
        path = path.parent
    parts = module.__name__.split(".")
    root = str(path.parents[len(parts) - 1])
    return SourceRef(module.__name__, str(path), source_sha256(path), from_path=False, root=root)


def _module_from_name(spec: str) -> tuple[ModuleType, str]:
    modname, _, attr = spec.partition(":")
    if not modname or not attr or not modname.replace(".", "_").isidentifier() or not attr.isidentifier():
        raise PetridishError(f"The experiment '{spec}' must be package.module:ATTR, a .py file or a registered "
                             "name. Got a malformed module spec.")
    try:
        module = _import_module(modname)
    except ModuleNotFoundError as e:
        raise PetridishError(f"Cannot import the module '{modname}' of '{spec}' ({e}). Install it, run from the "
                             "directory that holds it, or add that directory to PYTHONPATH.") from None
    return module, attr


def _pick(module: ModuleType, attr: str, where: str) -> Experiment:
    if not hasattr(module, attr):
        raise PetridishError(f"No module-level {attr} in {where}. Add {attr} = Experiment(...) "
                             "(`petridish new NAME` writes an example).")
    exp = getattr(module, attr)
    if not isinstance(exp, Experiment):
        raise PetridishError(f"{attr} in {where} must be a petridish.lab.Experiment. Got {type(exp).__name__}.")
    return exp


def _remember(exp: Experiment, ref: SourceRef) -> Experiment:
    _loaded[id(exp)] = (exp, ref)
    return exp


def is_path_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec or spec.startswith(".") or spec.startswith("~")


def load_experiment(spec: str) -> Experiment:
    """The experiment a spec names: a registered name, a .py file or package directory that
    defines ``EXPERIMENT``, or ``package.module:ATTR``. Errors are one line."""
    if not isinstance(spec, str) or not spec:
        raise PetridishError(f"The experiment must be a name, a path or package.module:ATTR. Got {spec!r}.")
    if is_path_spec(spec) or (":" not in spec and os.path.isdir(spec) and spec not in registry.catalogue()):
        module, ref = _module_from_path(spec)
        return _remember(_pick(module, ATTR, ref.path), ref)
    if ":" in spec:
        module, attr = _module_from_name(spec)
        return _remember(_pick(module, attr, f"the module '{module.__name__}'"), _module_ref(module))
    return registry.get(spec)


# ---------------------------------------------------------------------------------------------- recording

def _defining_module(exp: Experiment) -> ModuleType | None:
    name = getattr(exp.run, "__module__", None)
    return sys.modules.get(name) if name else None


def _ref_of(exp: Experiment) -> SourceRef | None:
    """Where ``exp`` was loaded from, if this module loaded it (or a copy of it: same run function)."""
    hit = _loaded.get(id(exp))
    if hit is not None and hit[0] is exp:
        return hit[1]
    for other, ref in list(_loaded.values()):
        if other.run is exp.run:
            return ref
    return None


def source_info(exp: Experiment) -> dict[str, Any]:
    """{"module", "file", "sha256"} of the code that computes ``exp``'s cells (``None`` values
    when it has no source file, e.g. a function typed into a notebook)."""
    ref = _ref_of(exp)
    if ref is not None:
        return {"module": ref.module, "file": ref.path, "sha256": ref.sha256}
    module = _defining_module(exp)
    if module is None or not getattr(module, "__file__", None):
        return {"module": getattr(exp.run, "__module__", None), "file": None, "sha256": None}
    path = Path(module.__file__).resolve()
    path = path.parent if path.name == "__init__.py" else path
    return {"module": module.__name__, "file": str(path), "sha256": source_sha256(path)}


def is_builtin(info: dict[str, Any]) -> bool:
    """Code shipped inside the petridish package (its catalogue): versioned by ``Experiment.version``."""
    mod = info.get("module") or ""
    return mod == "petridish" or mod.startswith("petridish.")


# ---------------------------------------------------------------------------------------------- finding again

def experiment_for(record: Any) -> Experiment:
    """The experiment of a stored run: from the source its provenance records, else by name."""
    name, rid = record.experiment, record.id
    src = (record.provenance or {}).get("source") or {}
    path, modname = src.get("file"), src.get("module") or ""
    if path and modname.startswith(PREFIX):
        if not os.path.exists(path):
            raise PetridishError(f"The experiment '{name}' of run {rid} was loaded from {path}, which no longer "
                                 "exists. Restore the file, or run the experiment again from where it is now.")
        module, _ref = _module_from_path(path)
        return _named(module, name, rid, path)
    if modname and path and not is_builtin(src):
        try:
            module = _import_module(modname, root=str(Path(path).parents[len(modname.split(".")) - 1]))
        except ImportError:
            module = None
        if module is not None:
            try:
                return _named(module, name, rid, path)
            except PetridishError:
                pass                  # e.g. a plug-in built by a function: look it up by name below
    try:
        return registry.get(name)
    except PetridishError:
        where = f" (from the module '{modname}', {path})" if modname else ""
        raise PetridishError(f"The experiment '{name}' of run {rid}{where} cannot be found: it is not registered "
                             "and its module cannot be imported. Install or restore it, then try again.") from None


def _named(module: ModuleType, name: str, rid: str, path: str) -> Experiment:
    """The Experiment called ``name`` among the module's attributes (remembered with its source)."""
    for attr in [ATTR] + sorted(vars(module)):
        exp = getattr(module, attr, None)
        if isinstance(exp, Experiment) and exp.name == name:
            ref = (SourceRef(module.__name__, path, module.__petridish_source__, from_path=True)
                   if module.__name__.startswith(PREFIX) else _module_ref(module))
            return _remember(exp, ref)
    raise PetridishError(f"The experiment '{name}' of run {rid} is no longer defined in {path}. "
                         "Restore it, or start a new run.")


# ---------------------------------------------------------------------------------------------- pickling

def _ensure(ref: SourceRef) -> ModuleType:
    """Import ``ref``'s module in this process, refusing a source that changed since the driver read it."""
    module = sys.modules.get(ref.module)
    if module is not None and getattr(module, "__petridish_source__", None) == ref.sha256:
        return module                 # already imported (or checked) here
    if not os.path.exists(ref.path):
        raise PetridishError(f"The experiment source {ref.path} does not exist on this worker. Run from a "
                             "shared file system, or install the experiment's package there.")
    if source_sha256(ref.path) != ref.sha256:
        raise PetridishError(f"The experiment source {ref.path} changed while the run was going; no cell is "
                             "computed by mixed code. Run again.")
    if ref.from_path:
        return _exec_path(Path(ref.path), ref.sha256)
    module = _import_module(ref.module, root=ref.root)
    module.__petridish_source__ = ref.sha256    # checked: the hash is not computed again in this process
    return module


def _rebuild(ref: SourceRef, blob: bytes) -> Experiment:
    _ensure(ref)                      # the functions in ``blob`` are references into this module
    exp = Experiment(**pickle.loads(blob))
    return _remember(exp, ref)


def _reduce_experiment(exp: Experiment):
    ref = _ref_of(exp)
    if ref is None:                   # the catalogue, plug-ins, test modules: pickled by reference as before
        return exp.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    fields = {f.name: getattr(exp, f.name) for f in dataclasses.fields(exp)}
    return _rebuild, (ref, pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL))


copyreg.pickle(Experiment, _reduce_experiment)
