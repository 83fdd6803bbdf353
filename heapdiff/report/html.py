"""The self-contained HTML report: one file, all CSS and JS inline, no URL to anything outside it.

People attach the page to bug tickets and open it offline, so it loads nothing: the stylesheets and the scripts
(``report.css``, ``report.js``, and ``views.css``, ``views.js`` for the flame graph, call trees, charts, search
and copy; our own files shipped beside the template) are inlined, and a Content-Security-Policy ``<meta>`` allows
nothing but those inline blocks, by hash. A string that slipped through escaping could therefore neither load
anything nor run. The data the views draw travels as one JSON block (:mod:`heapdiff.report.page_data`), which is
never run and is made inert by its own escaping.

Every string of the view that came from a trace is untrusted: the jinja2 environment autoescapes everything
(``autoescape=True``) and only the four files above, and the JSON block, are marked safe. Undefined names fail rendering
(``StrictUndefined``). Rendering is deterministic (no time of rendering), which the golden test relies on.

Templates are read from ``heapdiff/report/templates`` through :mod:`importlib.resources`, so they load from a
wheel, an editable install, a source checkout or a zip alike.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
from functools import lru_cache
from importlib.resources.abc import Traversable
from typing import Final

import jinja2
from markupsafe import Markup

from heapdiff.report.charts import histogram_chart, sparkline, timeline_chart
from heapdiff.report.page_data import page_data, script_json, stack_key
from heapdiff.report.sentences import RECORD_HELP
from heapdiff.report.text import format_bytes, format_count
from heapdiff.report.view import ReportView

__all__ = ["TEMPLATE", "prepare_html", "render_html", "set_bytecode_cache", "template_root"]

TEMPLATE: Final = "report.html.j2"
_CSS: Final = "report.css"
_JS: Final = "report.js"
#: the flame graph, trees, charts, search and copy: blocks of their own, each allowed by its own hash
_VIEWS_CSS: Final = "views.css"
_VIEWS_JS: Final = "views.js"


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


_bytecode_cache: jinja2.BytecodeCache | None = None


def set_bytecode_cache(cache: jinja2.BytecodeCache | None) -> None:
    """Where compiled templates are kept (the shell decides; none by default). Compiling the report template is
    pure Python on the job's start, while the traces' threads start; loading a compiled one is much cheaper."""
    global _bytecode_cache
    _bytecode_cache = cache
    _environment.cache_clear()


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_read),
        bytecode_cache=_bytecode_cache,
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
    env.globals.update(timeline_chart=timeline_chart, sparkline=sparkline, histogram_chart=histogram_chart,
                       stack_key=stack_key)
    return env


def prepare_html() -> None:
    """Load (compile) the template now: the job calls this while the traces are being read."""
    _environment().get_template(TEMPLATE)


def render_html(view: ReportView) -> str:
    """The report page of ``view``: one self-contained HTML document (UTF-8 text)."""
    env = _environment()
    css = _inline(_CSS, r"</style")
    js = _inline(_JS, r"</script")
    views_css = _inline(_VIEWS_CSS, r"</style")
    views_js = _inline(_VIEWS_JS, r"</script")
    # the JSON data block is not listed: it is never run (type application/json), only read as text
    csp = (f"default-src 'none'; style-src {_csp_hash(css)} {_csp_hash(views_css)}; "
           f"script-src {_csp_hash(js)} {_csp_hash(views_js)}; "
           "img-src 'none'; base-uri 'none'; form-action 'none'")
    return env.get_template(TEMPLATE).render(
        view=view,
        record_help=RECORD_HELP,
        # a trend shows its last run against its first, as a diff shows "after" against "before"
        diff=view.is_diff or view.mode == "trend",
        status_col=view.is_diff,
        first_label="First run" if view.mode == "trend" else "Before",
        last_label="Last run" if view.mode == "trend" else "After",
        css=Markup(css),  # our own file, not data: marked safe on purpose
        js=Markup(js),  # likewise
        views_css=Markup(views_css),  # likewise
        views_js=Markup(views_js),  # likewise
        # made inert by script_json itself (no <, > or & left): HTML escaping would corrupt it, since a script
        # element's text is never entity-decoded
        page_data=Markup(script_json(page_data(view))),
        trend=view.mode == "trend",
        csp=csp,
    )
