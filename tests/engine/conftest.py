"""The tiny click bundle of the whole suite (``tests/conftest.py``: ``tiny_bundles``)."""
import pytest


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bundles):
    return tiny_bundles["click"]
