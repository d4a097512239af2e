"""Start-up work deferred until used (storage/lazyimport.py, bot/startup.py, the local model):
what lancedb re-exports but we never use stays unimported, and search, ingest and the deferred
names still work."""

from __future__ import annotations

import ast
import contextlib
import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot import startup
from storage.lazyimport import annotation_only_imports, reexport_table
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, tmp_path: Path) -> str:
    """A fresh interpreter: what a real process imports, not what this test session did."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        timeout=120,
    )
    return out.stdout.strip()


def test_ingest_and_search_work_without_importing_the_namespace_client(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text(
        "# Keys\n\n## Rotate a key\n\nChoose Settings, Keys, Rotate. The old key stays valid "
        "for 24 hours.\n",
        encoding="utf-8",
    )
    out = run_python(
        f"""
        import sys
        from storage.knowledge import KnowledgeBase
        kb = KnowledgeBase.open({str(tmp_path / "kb")!r}, None)
        kb.ingest([{str(docs)!r}])
        hits = kb.search("how do I rotate a key")
        unused = sorted(m for m in sys.modules if m.startswith(
            ("lance_namespace_urllib3_client.api", "lance_namespace_urllib3_client.api_client")))
        print(hits[0].heading, len(unused))
        # The deferred names are still there, imported on first use.
        import lance_namespace_urllib3_client as client
        print(client.TableApi.__name__, client.__version__ != "", "TableApi" in dir(client))
        from lance_namespace_urllib3_client import ApiClient
        print(ApiClient.__name__)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["Rotate a key 0", "TableApi True True", "ApiClient"]


def test_the_openai_sdk_answers_and_embeds_without_its_unused_api_types(tmp_path: Path) -> None:
    # storage/openai_sdk.py: the chat client streams an answer and the embedder embeds through
    # the real SDK against the fake server, while the type packages of APIs we never call (the
    # Responses API, evals, vector stores) stay unimported but for the few the chat path
    # names; a deferred type still resolves.
    with FakeOpenAI().in_thread() as fake:
        out = run_python(
            f"""
            import asyncio, sys
            from bot.model_client import BoundedRetryOpenAI
            from storage.embeddings import OpenAIEmbedder

            async def chat():
                client = BoundedRetryOpenAI(api_key={FAKE_API_KEY!r}, base_url={fake.base_url!r})
                body = {{"model": "m", "messages": [{{"role": "user", "content": "hi"}}],
                        "stream": True}}
                response = await client.post_chat(body)
                text = (await response.aread()).decode()
                await response.aclose()
                await client.close()
                return "data:" in text

            print(asyncio.run(chat()))
            vectors = OpenAIEmbedder(api_key={FAKE_API_KEY!r}, base_url={fake.base_url!r}).embed(
                ["one", "two"])
            print(len(vectors))
            unused = ("openai.types.responses", "openai.types.evals", "openai.types.vector_stores")
            print(sum(1 for m in sys.modules if m.startswith(unused)))
            from openai.types.responses import Response
            print(Response.__name__)
            """,
            tmp_path,
        )
    answered, embedded, loaded, deferred = out.splitlines()
    assert (answered, embedded, deferred) == ("True", "2", "Response")
    # Hundreds of modules when the SDK imports every type; a handful the chat path names.
    assert int(loaded) < 10


def test_only_a_pure_reexport_init_is_deferred() -> None:
    names, constants = reexport_table(
        '"""Doc."""\n__version__ = "1.2"\nfrom pkg.a import A\nfrom .b import B as C\n', "pkg"
    )
    assert names == {"A": ("pkg.a", "A"), "C": ("pkg.b", "B")}
    assert constants == {"__version__": "1.2"}
    for code in (
        "import os\n",
        "from pkg.a import *\n",
        "X = compute()\n",
        "def f():\n    pass\n",
        "if True:\n    from pkg.a import A\n",
    ):
        with pytest.raises(ValueError):
            reexport_table(code, "pkg")


def test_a_package_that_does_more_is_imported_as_usual(tmp_path: Path) -> None:
    package = tmp_path / "pkgdemo"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from pkgdemo.part import VALUE\nSIDE_EFFECT = len('abc')\n", encoding="utf-8"
    )
    (package / "part.py").write_text("VALUE = 42\n", encoding="utf-8")
    (tmp_path / "reexport").mkdir()
    (tmp_path / "reexport" / "__init__.py").write_text(
        "from reexport.part import VALUE\n", encoding="utf-8"
    )
    (tmp_path / "reexport" / "part.py").write_text("VALUE = 7\n", encoding="utf-8")
    out = run_python(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from storage.lazyimport import defer_reexports
        defer_reexports(["pkgdemo", "reexport"])
        import pkgdemo, reexport
        print(pkgdemo.SIDE_EFFECT, "pkgdemo.part" in sys.modules)
        print("reexport.part" in sys.modules, reexport.VALUE, "reexport.part" in sys.modules)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["3 True", "False 7 True"]


def test_namespace_models_named_only_in_annotations_load_on_first_use(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text("# Keys\n\n## Rotate a key\n\nSettings, Keys, Rotate.\n")
    out = run_python(
        f"""
        import sys
        from storage.knowledge import KnowledgeBase
        kb = KnowledgeBase.open({str(tmp_path / "kb")!r}, None)
        kb.ingest([{str(docs)!r}])
        print(kb.search("rotate a key")[0].heading)
        prefix = "lance_namespace_urllib3_client.models."
        print(sum(m.startswith(prefix) for m in sys.modules) < 40)
        # Every name lance_namespace offers is still there, the same objects as the client's.
        import lance_namespace
        from lance_namespace_urllib3_client.models.list_tables_request import ListTablesRequest
        print(lance_namespace.ListTablesRequest is ListTablesRequest)
        print(lance_namespace.CreateEmptyTableRequest is lance_namespace.CreateTableRequest)
        print(all(hasattr(lance_namespace, name) for name in lance_namespace.__all__))
        print(lance_namespace.LanceNamespace.list_tables.__annotations__["request"])
        """,
        tmp_path,
    )
    assert out.splitlines() == ["Rotate a key", "True", "True", "True", "True", "ListTablesRequest"]


def test_a_name_used_in_code_is_imported_as_usual(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        from m import A, B, C, D, E, F
        from other import G
        __all__ = ["A", "B", "C", "D", "E", "F", "G"]
        ALIAS = C
        class K(D):
            def f(self, a: A, *, b: B = E) -> B:
                return F(a)
        """
    )
    tree, deferred = annotation_only_imports(source, "m")
    assert deferred == {"A": "A", "B": "B"}
    assert ast.unparse(tree.body[0]) == "from m import C, D, E, F"
    assert "from other import G" in ast.unparse(tree)
    package = tmp_path / "annpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from annpkg.models import Model, Other\n"
        "import pydantic\n"
        "class Needs(pydantic.BaseModel):\n"
        "    field: Model  # read by pydantic: this package is imported as usual\n"
        "def f(x: Other) -> None: ...\n",
        encoding="utf-8",
    )
    fallback = tmp_path / "annfallback"
    fallback.mkdir()
    (fallback / "__init__.py").write_text(
        "from annpkg.models import Other\n"
        "def g(x: Other) -> None: ...\n"
        "NAME = g.__annotations__['x'].__name__  # fails on a string: run again as written\n",
        encoding="utf-8",
    )
    (package / "models.py").write_text(
        "import pydantic\nclass Model(pydantic.BaseModel):\n    a: int = 1\nclass Other: ...\n",
        encoding="utf-8",
    )
    out = run_python(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from storage.lazyimport import defer_annotation_imports
        defer_annotation_imports({{"annpkg": "annpkg.models", "annfallback": "annpkg.models"}})
        import annpkg
        print(annpkg.Needs(field={{"a": 2}}).field.a, annpkg.f.__annotations__["x"])
        import annfallback
        print(annfallback.NAME)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["2 <class 'annpkg.models.Other'>", "Other"]
    for reads in (
        "@dataclass\nclass K:\n    pass\n",
        "class K:\n    x: A\n",
        "@validate_call\ndef f(a: A) -> None: ...\n",
    ):
        with pytest.raises(ValueError):
            annotation_only_imports("from m import A\n" + reads, "m")


def test_lancedb_gets_the_override_marker_it_uses_on_newer_pythons(tmp_path: Path) -> None:
    out = run_python(
        f"""
        import sys
        from storage.knowledge import KnowledgeBase
        KnowledgeBase.open({str(tmp_path / "kb")!r}, None)
        import lancedb.db
        # The marker lancedb uses on Python 3.12+ (typing.override): it checks nothing.
        print(lancedb.db.LanceDBConnection.open_table.__override__)
        print("overrides" in sys.modules)
        import overrides  # the real package for anyone who imports it later
        print(hasattr(overrides, "EnforceOverrides"), overrides.__file__ is not None)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["True", "False", "True True"]
    out = run_python(
        f"""
        import overrides
        from storage.knowledge import KnowledgeBase
        KnowledgeBase.open({str(tmp_path / "kb2")!r}, None)
        import lancedb.db
        print(lancedb.db.EnforceOverrides is overrides.EnforceOverrides)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["True"]  # imported before: left alone


def test_startup_thresholds_are_restored() -> None:
    before = gc.get_threshold()
    startup.starting()
    assert gc.get_threshold() == startup.STARTUP_THRESHOLDS
    startup.started()
    assert gc.get_threshold() == before
    startup.started()  # twice is harmless
    assert gc.get_threshold() == before


def test_a_command_restores_the_collector(tmp_path: Path) -> None:
    from bot.cli import main

    before = gc.get_threshold()
    with contextlib.suppress(SystemExit):
        main(["--help"])
    assert gc.get_threshold() == before


def test_help_loads_no_database_knowledge_base_or_platform_library(tmp_path: Path) -> None:
    out = run_python(
        """
        import sys
        from bot.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        heavy = ("sqlalchemy", "pydantic_settings", "lancedb", "discord", "slack_bolt", "openai")
        print(sorted(m for m in heavy if m in sys.modules))
        """,
        tmp_path,
    )
    assert out.splitlines()[-1] == "[]"
