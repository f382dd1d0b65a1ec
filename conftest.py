"""Project-wide pytest configuration for sockharness's own test suite."""

pytest_plugins = ["pytester"]
