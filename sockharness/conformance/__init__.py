"""The conformance suite: property-based checks of any socketserver-compatible class.

Run it as a library (:func:`check`), from pytest (``--sockharness-conformance=TARGET``,
or subclass :class:`ServerConformance`), or from the command line
(``sockharness conform TARGET``).
"""

from sockharness._core import publish

from ._properties import PROPERTIES, CheckConfig, Property
from ._pytest import ServerConformance, conformance_items
from ._runner import PROFILES, Profile, PropertyResult, Report, check, run_property
from ._target import ServerUnderTest, TargetError, resolve_target

__all__ = [
    "PROFILES",
    "PROPERTIES",
    "CheckConfig",
    "Profile",
    "Property",
    "PropertyResult",
    "Report",
    "ServerConformance",
    "ServerUnderTest",
    "TargetError",
    "check",
    "conformance_items",
    "resolve_target",
    "run_property",
]

publish(globals(), __all__, __name__)
