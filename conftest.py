"""Project-wide pytest configuration for sockharness's own test suite."""

# pytester's in-process runs drop every module first imported during the run
# from sys.modules afterwards. Modules with native state (cryptography, under
# trustme) then break when imported a second time in the same process, so the
# libraries the plugin loads lazily are loaded here, once, before any run.
import faker  # noqa: F401
import trustme  # noqa: F401

pytest_plugins = ["pytester"]
