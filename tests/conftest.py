"""Shared pytest configuration: fixture plugins from tests/fakes."""

pytest_plugins = ["tests.fakes.target_fixtures", "tests.fakes.delivery_fixtures"]
