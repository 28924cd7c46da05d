"""Fixtures of the teacher-student tests (helpers: ts_scripted.py)."""

import pytest

from ts_scripted import write_tatqa


@pytest.fixture
def tatqa_file(tmp_path):
    return write_tatqa(tmp_path / "tatqa.json")
