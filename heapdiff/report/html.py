"""The self-contained HTML report: one file, all CSS and JS inline, no URL to anything outside it.

People attach the page to bug tickets and open it offline, so it loads nothing: the stylesheet and the script
(``report.css``, ``report.js``, our own files shipped beside the template) are inlined, and a
Content-Security-Policy ``<meta>`` allows nothing but those two inline blocks, by hash. A string that slipped
through escaping could therefore neither load anything nor run.

Every string of the view that came from a trace is untrusted: the jinja2 environment autoescapes everything
(``autoescape=True``) and only the two files above are marked safe. Undefined names fail rendering
(``StrictUndefined``). Rendering is deterministic (no time of rendering), which the golden test relies on.

Templates are read from ``heapdiff/report/templates`` through :mod:`importlib.resources`, so they load from a
wheel, an editable install, a source checkout or a zip alike.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.resources
import re
import sys
from functools import lru_cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

import jinja2
from markupsafe import Markup

from heapdiff.report.model import ReportView, format_bytes, format_count

__all__ = ["TEMPLATE", "prepare_html", "render_html", "template_root"]

TEMPLATE: Final = "report.html.j2"
_CSS: Final = "report.css"
_JS: Final = "report.js"


def template_root() -> Traversable:
    """Where the templates are: the ``templates`` folder of the ``heapdiff.report`` package."""
    root = importlib.resources.files("heapdiff.report").joinpath("templates")
    if not root.joinpath(TEMPLATE).is_file():
        raise FileNotFoundError(f"heapdiff's report templates are missing (no {TEMPLATE} in {root})")
    return root


def _read(name: str) -> str:
    return template_root().joinpath(name).read_text(encoding="utf-8")


def _delta_class(n: int) -> str:
    return "up" if n > 0 else "down" if n < 0 else "zero"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.3f} s"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h} h {m:02d} min {sec:02d} s" if h else f"{m} min {sec:02d} s"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _inline(name: str, closing: str) -> str:
    text = _read(name)
    # our own file, inlined as is: it must not be able to close its own element early
    if re.search(closing, text, re.IGNORECASE):
        raise ValueError(f"{name} contains {closing!r}, which would end the inline block")
    return text


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept like Python's own bytecode: read always, written unless the interpreter writes no
    bytecode (``PYTHONDONTWRITEBYTECODE``), never an error (a read-only install just compiles each time).

    Why: compiling the report template is ~0.1 s of pure Python in every run (holding the GIL while the traces'
    threads start); loading it is ~2 ms. Jinja keys an entry by the template's name and checks it against a
    hash of the source and its own bytecode version, so an edited template or another Python never loads a
    stale entry."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if sys.dont_write_bytecode:
            return
        with contextlib.suppress(OSError):
            Path(self.directory).mkdir(exist_ok=True)
            super().dump_bytecode(bucket)


def _bytecode_dir() -> Path | None:
    """``__pycache__`` beside the templates (where Python keeps the package's .pyc files), when they are files."""
    root = template_root()
    return root / "__pycache__" if isinstance(root, Path) else None


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    where = _bytecode_dir()
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_read),
        bytecode_cache=_TemplateCache(str(where), "%s.jinja-cache") if where is not None else None,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["fbytes"] = lambda n, signed=False: format_bytes(int(n), signed=bool(signed))
    env.filters["fcount"] = lambda n, signed=False: format_count(int(n), signed=bool(signed))
    env.filters["dclass"] = _delta_class
    env.filters["fduration"] = _duration
    return env


def prepare_html() -> None:
    """Load the template now (compiled: ~0.1 s of pure Python when not in the bytecode cache, see
    :class:`_TemplateCache`): the job calls this while the traces are being read."""
    _environment().get_template(TEMPLATE)


def render_html(view: ReportView) -> str:
    """The report page of ``view``: one self-contained HTML document (UTF-8 text)."""
    env = _environment()
    css = _inline(_CSS, r"</style")
    js = _inline(_JS, r"</script")
    csp = (f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
           "img-src 'none'; base-uri 'none'; form-action 'none'")
    return env.get_template(TEMPLATE).render(
        view=view,
        diff=view.is_diff,
        css=Markup(css),  # our own file, not data: marked safe on purpose
        js=Markup(js),  # likewise
        csp=csp,
    )
