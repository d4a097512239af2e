"""MyST Markdown (Sphinx's Markdown: Click, Flask, Jupyter Book) as the plain Markdown a reader
sees on the published page.

Without this, a MyST page's markup reached the knowledge base and the offline answer as text:
``{func}`version_option``` instead of ```version_option```, a ```` ```{note} ```` admonition
quoted as a code block, ```` ```{eval-rst} ```` examples shown with their reST directive lines,
and empty ```` ```{currentmodule} ```` / ```` ```{contents} ```` blocks and ``(label)=`` targets
as passages of their own. Here:

- roles become what Sphinx renders: ``{func}`~click.Context.invoke``` -> ```invoke```,
  ``{ref}`the testing guide <testing>``` -> ``the testing guide``;
- an admonition (``note``, ``warning``, ``admonition Title``, ``versionadded 2.0``...) becomes
  its prose (and its title), code directives (``code-block python``) become fenced code,
  ``eval-rst`` blocks are read as reST (their code examples fenced, ``click:run`` invocations
  and autodoc directives dropped), and directives that show nothing of their own (``toctree``,
  ``contents``, ``currentmodule``, ``image``...) are dropped;
- an unknown directive stays a fenced block (R Markdown's ```` ```{r} ```` is code).

Pure function over lines; storage.documents.parse_markdown applies it to every Markdown page.
"""

from __future__ import annotations

import re
import textwrap

# ```{name} argument  /  :::{name} argument  (MyST's colon fence)
_DIRECTIVE = re.compile(r"^(\s*)(`{3,}|~{3,}|:{3,})\{([\w:.-]+)\}\s*(.*?)\s*$")
_PLAIN_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_LABEL = re.compile(r"^\s*\([\w.:-]+\)=\s*$")  # (target-name)=
_ROLE = re.compile(r"(?<![\w/{`-])\{([\w:.-]+)\}`([^`]+)`")
_OPEN_ROLE = re.compile(r"(?<![\w/{`-])\{[\w:.-]+\}`[^`]*$")  # its content goes on
_EXPLICIT_TITLE = re.compile(r"^(.*?)\s*<[^<>]+>$", re.DOTALL)
# Roles Sphinx renders as literal code (the Python domain and friends); the rest as plain text.
_CODE_ROLES = {
    "func", "class", "meth", "attr", "exc", "data", "mod", "obj", "const", "type", "envvar",
    "option", "program", "command", "file", "samp", "code", "kbd", "literal", "member",
    "function", "macro", "var", "decorator", "property", "method",
}  # fmt: skip
_TEXT_ROLES = {"pep": "PEP {}", "rfc": "RFC {}"}

_ADMONITIONS = {
    "note", "warning", "tip", "hint", "important", "caution", "attention", "danger", "error",
    "seealso", "admonition", "topic", "sidebar", "margin", "dropdown", "tab", "tab-item",
    "group-tab", "tab-set", "tabs", "card", "grid", "grid-item", "grid-item-card", "only",
    "rubric", "container", "glossary", "epigraph", "pull-quote", "highlights", "list-table",
    "div", "versionadded", "versionchanged", "deprecated", "versionremoved",
}  # fmt: skip
_TABS = {"tab", "tab-item", "group-tab"}
_VERSION_NOTES = {
    "versionadded": "New in version {}.",
    "versionchanged": "Changed in version {}.",
    "deprecated": "Deprecated since version {}.",
    "versionremoved": "Removed in version {}.",
}
_CODE = {"code-block": "", "code": "", "sourcecode": "", "code-cell": ""}
# Directives whose body is an example program in a given language.
_EXAMPLES = {
    "click:example": "python",
    "testcode": "python",
    "testsetup": None,  # run by the doc tests, never shown
    "testcleanup": None,
    "doctest": "pycon",
    "ipython": "ipython",
    "jupyter-execute": "python",
}
# Directives that show nothing of their own on the page (navigation, module context, an
# autodoc entry built from the code, media) or whose body a reader never reads as text.
_HIDDEN = {
    "toctree", "contents", "currentmodule", "module", "index", "highlight", "default-role",
    "default-domain", "meta", "image", "figure", "raw", "include", "literalinclude", "math",
    "mermaid", "graphviz", "tabularcolumns", "autosummary", "automodule", "autoclass",
    "autofunction", "automethod", "autoattribute", "autodata", "autoexception", "autoprogram",
    "click", "click:run", "program-output", "command-output", "spelling:word-list",
}  # fmt: skip
# reST inside ```{eval-rst}: ".. name:: argument" with an indented body, "para::" literal blocks.
_RST_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.-]+)::\s*(.*?)\s*$")
_RST_OPTION = re.compile(r"^\s*:[\w-]+:(?:\s.*)?$")
_RST_ROLE = re.compile(r"(?<![\w`]):(?:[\w-]+:)?([\w-]+):`([^`]+)`")


def to_markdown(lines: list[str]) -> list[str]:
    """The lines with MyST's roles, directives and targets turned into plain Markdown."""
    out: list[str] = []
    i = 0
    fence: str | None = None  # the plain code fence being copied
    while i < len(lines):
        line = lines[i]
        if fence is not None:
            out.append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            i += 1
            continue
        directive = _DIRECTIVE.match(line)
        if directive is not None:
            marker = directive.group(2)
            end = _closing(lines, i + 1, marker)
            out += _directive(directive.group(3).lower(), directive.group(4), lines[i + 1 : end])
            i = end + 1
            continue
        plain = _PLAIN_FENCE.match(line)
        if plain is not None:
            fence = plain.group(1)
            out.append(line)
        elif not _LABEL.match(line):
            # A role whose content is wrapped onto the next line is rendered whole.
            while _OPEN_ROLE.search(line) and i + 1 < len(lines) and lines[i + 1].strip():
                i += 1
                line = f"{line}\n{lines[i]}"
            out += roles(line).split("\n")
        i += 1
    return out


def roles(line: str) -> str:
    """``{role}`content``` as Sphinx renders it."""
    return _ROLE.sub(lambda m: _role_text(m.group(1), m.group(2)), line)


def _role_text(role: str, content: str) -> str:
    name = role.rsplit(":", 1)[-1].lower()
    titled = _EXPLICIT_TITLE.match(content)
    if titled is not None and titled.group(1):
        text = titled.group(1)
    else:
        text = content.lstrip("!")
        if text.startswith("~"):  # ~pkg.Class.method shows "method"
            text = text[1:].rsplit(".", 1)[-1]
        text = text.lstrip(".")
    if name in _TEXT_ROLES:
        return _TEXT_ROLES[name].format(text)
    return f"`{text}`" if name in _CODE_ROLES else text


def _closing(lines: list[str], start: int, marker: str) -> int:
    """Index of the line closing a directive opened with ``marker`` (or the end)."""
    for j in range(start, len(lines)):
        stripped = lines[j].strip()
        if stripped and not stripped.strip(marker[0]) and len(stripped) >= len(marker):
            return j
    return len(lines)


def _directive(name: str, argument: str, body: list[str], *, rst: bool = False) -> list[str]:
    """A directive as Markdown lines; a container's body is read as MyST, or as reST inside
    ``eval-rst`` (``rst``)."""
    body = _without_options(body)
    if name in _HIDDEN:
        return []
    if name in _CODE:
        return _fenced(argument.split()[0] if argument else "", body)
    if name in _EXAMPLES:
        language = _EXAMPLES[name]
        return [] if language is None else _fenced(language, body)
    if name == "eval-rst":
        return ["", *from_rst(body), ""]
    if name in _ADMONITIONS:
        lead = [_VERSION_NOTES[name].format(argument)] if name in _VERSION_NOTES else []
        if not lead and argument:
            title = _rst_inline(roles(argument))  # an admonition's or a tab's title
            # A tab's title names what its body is for: "Bash: Add this to ~/.bashrc".
            lead = [f"{title}:" if name in _TABS and not title.endswith(":") else title]
        inner = from_rst(body) if rst else to_markdown(body)
        return ["", *lead, *([""] if lead else []), *inner, ""]
    # Unknown to us: kept as the block it was (R Markdown's ```{r} chunk is code).
    return _fenced(name, body)


def _without_options(body: list[str]) -> list[str]:
    """A directive's body without its leading ``:option: value`` lines (or ``---`` YAML
    block), dedented."""
    lines = list(body)
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].strip() == "---"), None)
        if end is not None:
            lines = lines[end + 1 :]
    while lines and _RST_OPTION.match(lines[0]):
        lines = lines[1:]
    return textwrap.dedent("\n".join(lines)).strip("\n").splitlines()


def _fenced(language: str, body: list[str]) -> list[str]:
    code = textwrap.dedent("\n".join(body)).strip("\n")
    return ["", f"```{language}", *code.splitlines(), "```", ""] if code.strip() else []


def from_rst(lines: list[str]) -> list[str]:
    """reST (the body of ```{eval-rst}) as Markdown: directives as above, ``para::`` literal
    blocks fenced, roles rendered, ````code```` as ```code```."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _RST_DIRECTIVE.match(line)
        if directive is not None:
            end = _indented_end(lines, i + 1, len(directive.group(1)))
            name, argument = directive.group(2).lower(), directive.group(3)
            out += _directive(name, argument, lines[i + 1 : end], rst=True)
            i = end
            continue
        stripped = line.rstrip()
        if stripped.endswith("::") and not stripped.lstrip().startswith(".."):
            end = _indented_end(lines, i + 1, len(line) - len(line.lstrip()))
            block = lines[i + 1 : end]
            if any(b.strip() for b in block):
                text = stripped[:-2].rstrip()
                out.append(_rst_inline(text + ":" if text else ""))
                out += _fenced("", block)
                i = end
                continue
        if line.lstrip().startswith("#"):  # reST text, not a Markdown heading (nor "####")
            line = line.lstrip().lstrip("#").lstrip()
        out.append(_rst_inline(line))
        i += 1
    return out


def _rst_inline(line: str) -> str:
    line = _RST_ROLE.sub(lambda m: _role_text(m.group(1), m.group(2)), line)
    return line.replace("``", "`")


def _indented_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the block of lines indented deeper than ``indent`` (blank lines inside)."""
    end = start
    for j in range(start, len(lines)):
        if not lines[j].strip():
            continue
        if len(lines[j]) - len(lines[j].lstrip()) <= indent:
            break
        end = j + 1
    return end
