from __future__ import annotations

from tests.fakes.graph_api import fake_graph  # noqa: F401 (re-exported fixture)
