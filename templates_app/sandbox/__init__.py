"""The Jinja2 sandbox tenants' templates run in, with its limits on work.

`ImmutableSandboxedEnvironment` keeps templates away from Python internals and
from mutating the data they are given; this subclass also bounds what a
template can make the worker do (see `templates_app.limits`):

- every way a template builds a value is checked before the value is built, or
  right after for the ones that at most multiply their input by a small factor:
  the `+ * % **` operators, `~` and `{% set %}` blocks, `str.format`, `%`
  formatting, string methods and filters;
- every value turned into text (output, `~`, `join`, `tojson` …) is measured
  first, so a list that refers to the same big string a thousand times is
  refused before it prints as a thousand copies;
- every value built is capped by its size written out in full, so a tuple that
  holds the same inner tuple 150 times at each of four levels is refused, and
  whatever hashes or compares values (`==`, `in`, tests, dict keys and `d[key]`,
  sort, unique, `loop.changed`) is charged by that full size;
- loops count their iterations, and each iteration charges the size of its body
  to the render's work budget, so loops cannot multiply cheap steps forever.

Loops, `~` and comparisons are routed through the environment by rewriting the
parsed template: `for x in items` iterates `environment.guard_loop(items, steps)`,
`a ~ b` calls `environment.guard_concat(a, b)`, `a in b` calls
`environment.guard_compare(a, "in", b)`, and tuple, list and dict literals go
through `guard_value` and `guard_dict`. Guarded operations run only inside a
render's budget, so Jinja2 never folds them into constants at compile time.
"""

from __future__ import annotations

from templates_app.sandbox.environment import BoundedEnvironment

__all__ = ["BoundedEnvironment"]
