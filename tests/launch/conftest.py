"""Fixtures of the launcher tests."""

import textwrap

import pytest


@pytest.fixture
def script(tmp_path):
    """``script(name, source)`` writes a dedented worker script; returns its path."""

    def write(name, source):
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return str(path)

    return write
