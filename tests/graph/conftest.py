from __future__ import annotations

import pytest

from bss2.graph import GraphBuilder


@pytest.fixture
def builder() -> GraphBuilder:
    return GraphBuilder()
