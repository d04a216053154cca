import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_addoption(parser):
    parser.addoption(
        "--update-references", action="store_true",
        help="store each executed page's normalised outputs in tests/references/ "
             "instead of comparing with them (after an intentional change)",
    )


@pytest.fixture
def update_references(request) -> bool:
    return request.config.getoption("--update-references")
