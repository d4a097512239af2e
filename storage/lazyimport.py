"""Deferred re-exports: a package whose ``__init__`` only re-exports names from its submodules
imports each submodule on first use of one of its names instead of all of them up front.

Why: lancedb imports ``lance_namespace``, which imports ``lance_namespace_urllib3_client``, the
generated client for LanceDB's REST namespace server. Its ``__init__`` imports every API module
(each method wrapped in pydantic's ``validate_call``) and every model just to re-export them:
about 0.4 s of ``supportbot ask`` and 14 MB of every process, for a server we never talk to
(a local folder or object store needs none of it). The models lancedb does use still import as
usual, from their own modules.

Only a package whose ``__init__`` holds nothing but a docstring, ``from x import y`` statements
and literal assignments (``__version__ = "1.0"``) is deferred; that is checked with ``ast`` when
the package is imported, so a future version that adds code there is imported normally.
``pkg.Name`` and ``from pkg import Name`` keep working: the name resolves on first access
(a PEP 562 module ``__getattr__``). tests/test_lazy_imports.py holds the proof.

A second, narrower kind (:func:`defer_annotation_imports`): ``lance_namespace``, which lancedb
imports for a handful of names, also imports 108 of the client's pydantic models (about 0.1 s,
the largest single item of ``supportbot ask`` after pyarrow) only to name them in the type
annotations of its ``LanceNamespace`` interface and to re-export them. Its ``__init__`` is run
as written but compiled with ``from __future__ import annotations`` (annotations stay strings,
PEP 563) and without the import of the names it uses *only* in annotations or re-exports: those
resolve on first use like the re-exports above. A name its code uses anywhere else (a function
body, a default, a base class, a module-level statement) is imported as before, which is
checked with ``ast`` at import.

And :func:`marker_only_overrides`: on Python 3.11 lancedb decorates its connection classes with
the ``overrides`` package, which checks every overriding method's signature against its base
class's as the class is created (about 0.1 s of ``import lancedb``); on Python 3.12 and later
lancedb uses ``typing.override``, a marker that checks nothing at run time. While lancedb is
imported here it gets that same marker on 3.11 too.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_finder: _ReexportFinder | None = None


def defer_reexports(packages: Sequence[str]) -> None:
    """Defer the re-exports of these packages from the next time they are imported (a package
    already imported, or one whose ``__init__`` does more than re-export, is left alone)."""
    with _lock:
        _installed_finder().packages.update(packages)


def _installed_finder() -> _ReexportFinder:
    """The finder, first on ``sys.meta_path`` (installed on first use; call under _lock)."""
    global _finder
    if _finder is None:
        _finder = _ReexportFinder()
        sys.meta_path.insert(0, _finder)
    return _finder


@contextmanager
def marker_only_overrides() -> Iterator[None]:
    """Within the block, ``import overrides`` (lancedb's only use of it on Python < 3.12) gets
    ``typing_extensions.override``, the marker lancedb uses on 3.12+, and a plain
    ``EnforceOverrides`` base, as lancedb defines it there; the real package is left alone
    when something imported it already, and is what any later import gets."""
    if sys.version_info >= (3, 12) or "overrides" in sys.modules:
        yield
        return
    import typing_extensions

    shim = ModuleType("overrides")
    shim.override = typing_extensions.override  # type: ignore[attr-defined]
    shim.final = typing_extensions.final  # type: ignore[attr-defined]
    shim.EnforceOverrides = type("EnforceOverrides", (), {})  # type: ignore[attr-defined]
    sys.modules["overrides"] = shim
    try:
        yield
    finally:
        if sys.modules.get("overrides") is shim:
            del sys.modules["overrides"]


def defer_annotation_imports(packages: Mapping[str, str]) -> None:
    """``{package: module}``: from the next import of each package, the names its ``__init__``
    imports from ``module`` and uses only in annotations (or re-exports) load on first use."""
    with _lock:
        _installed_finder().annotation_only.update(packages)


def annotation_only_imports(source: str, module: str) -> tuple[ast.Module, dict[str, str]]:
    """``source`` without the names it imports from ``module`` but never uses outside
    annotations and ``__all__``, and ``{name: attribute}`` of those names."""
    tree = ast.parse(source)
    imported: dict[str, str] = {}
    rest: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == module:
            if any(alias.name == "*" for alias in node.names):
                raise ValueError("star import")
            imported.update({alias.asname or alias.name: alias.name for alias in node.names})
        else:
            rest.append(node)
    _check_annotations_unread(rest)
    used = _names_used_outside_annotations(rest)
    deferred = {name: attr for name, attr in imported.items() if name not in used}
    eager = [ast.alias(attr, name if name != attr else None) for name, attr in imported.items()]
    eager = [alias for alias in eager if (alias.asname or alias.name) not in deferred]
    tree.body = ([ast.ImportFrom(module, eager, 0)] if eager else []) + rest
    ast.fix_missing_locations(tree)
    return tree, deferred


# Decorators that never read a function's annotations.
_PLAIN_DECORATORS = {"abstractmethod", "staticmethod", "classmethod", "property", "override"}


def _check_annotations_unread(body: list[ast.stmt]) -> None:
    """ValueError unless nothing in ``body`` reads annotations when it runs: no decorated
    class (a dataclass), no annotated class attribute (a pydantic model, a TypedDict), no
    function decorator but plain ones (``validate_call`` would read them)."""
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.ClassDef):
            if node.decorator_list or any(isinstance(s, ast.AnnAssign) for s in node.body):
                raise ValueError(f"line {node.lineno}: class {node.name} may read annotations")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                name = decorator.attr if isinstance(decorator, ast.Attribute) else None
                name = decorator.id if isinstance(decorator, ast.Name) else name
                if name not in _PLAIN_DECORATORS and name != "setter":
                    raise ValueError(f"line {node.lineno}: decorator of {node.name}")


def _names_used_outside_annotations(body: list[ast.stmt]) -> set[str]:
    used: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_arg(self, node: ast.arg) -> None:
            pass  # a parameter's annotation

        def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
            # Everything but the annotations (``returns`` and the parameters').
            for child in (*node.decorator_list, *node.args.defaults, *node.body):
                self.visit(child)
            for default in node.args.kw_defaults:
                if default is not None:
                    self.visit(default)

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
            self.visit(node.target)
            if node.value is not None:
                self.visit(node.value)

        def visit_Name(self, node: ast.Name) -> None:
            if not isinstance(node.ctx, ast.Store):
                used.add(node.id)

    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            continue  # a list of strings: re-exporting a name is not using it
        Visitor().visit(node)
    return used


def reexport_table(source: str, package: str) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """``{name: (module, attribute)}`` and the literal constants of a re-export-only
    ``__init__``; ValueError if it holds anything else."""
    names: dict[str, tuple[str, str]] = {}
    constants: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.util.resolve_name("." * node.level + node.module, package)
            for alias in node.names:
                if alias.name == "*":
                    raise ValueError("star import")
                names[alias.asname or alias.name] = (module, alias.name)
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            constants[node.targets[0].id] = ast.literal_eval(node.value)  # ValueError if not
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            raise ValueError(f"line {node.lineno}: {type(node).__name__}")
    return names, constants


class _ReexportFinder:
    """First on ``sys.meta_path``; answers only for the named packages."""

    def __init__(self) -> None:
        self.packages: set[str] = set()
        self.annotation_only: dict[str, str] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in self.annotation_only:
            return _annotation_only_spec(fullname, path, self.annotation_only[fullname])
        if fullname not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or spec.submodule_search_locations is None:
            return None
        try:
            names, constants = reexport_table(Path(spec.origin).read_text("utf-8"), fullname)
        except (OSError, SyntaxError, ValueError):
            return None  # not (or no longer) a pure re-export: import it the usual way
        spec.loader = _ReexportLoader(names, constants)
        return spec


class _ReexportLoader:
    def __init__(self, names: dict[str, tuple[str, str]], constants: dict[str, Any]) -> None:
        self.names = names
        self.constants = constants

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        names = self.names

        def __getattr__(name: str) -> Any:
            try:
                source, attribute = names[name]
            except KeyError:
                raise AttributeError(
                    f"module {module.__name__!r} has no attribute {name!r}"
                ) from None
            value = getattr(importlib.import_module(source), attribute)
            setattr(module, name, value)  # later lookups are plain attribute reads
            return value

        def __dir__() -> list[str]:
            return sorted(set(module.__dict__) | set(names))

        module.__dict__.update(self.constants)
        module.__getattr__ = __getattr__  # type: ignore[attr-defined]
        module.__dir__ = __dir__  # type: ignore[method-assign]
        module.__dict__.setdefault(
            "__all__", [n for n in (*names, *self.constants) if not n.startswith("_")]
        )


def _annotation_only_spec(fullname: str, path: Any, module: str) -> Any:
    spec = importlib.machinery.PathFinder.find_spec(fullname, path)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        source = Path(spec.origin).read_text("utf-8")
        tree, deferred = annotation_only_imports(source, module)
        code = compile(
            tree, spec.origin, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True
        )
    except (OSError, SyntaxError, ValueError):
        return None  # import it the usual way
    spec.loader = _AnnotationOnlyLoader(code, (source, spec.origin), deferred, module)
    return spec


class _AnnotationOnlyLoader:
    """Runs the package's own code (compiled above); the deferred names resolve on first use.
    Should that code need an annotation at import after all (a future version defining a
    pydantic model there), the package is run again as written."""

    def __init__(
        self, code: Any, as_written: tuple[str, str], deferred: dict[str, str], source: str
    ) -> None:
        self.code = code
        self.as_written = as_written  # (source, path), compiled only if needed
        self.deferred = deferred
        self.source = source

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        deferred, source = self.deferred, self.source

        def __getattr__(name: str) -> Any:
            try:
                attribute = deferred[name]
            except KeyError:
                raise AttributeError(
                    f"module {module.__name__!r} has no attribute {name!r}"
                ) from None
            value = getattr(importlib.import_module(source), attribute)
            setattr(module, name, value)
            return value

        def __dir__() -> list[str]:
            return sorted(set(module.__dict__) | set(deferred))

        initial = dict(module.__dict__)  # the import system's attributes (__spec__, ...)
        module.__getattr__ = __getattr__  # type: ignore[attr-defined]
        module.__dir__ = __dir__  # type: ignore[method-assign]
        try:
            exec(self.code, module.__dict__)
        except Exception:
            module.__dict__.clear()
            module.__dict__.update(initial)
            exec(compile(*self.as_written, "exec", dont_inherit=True), module.__dict__)
