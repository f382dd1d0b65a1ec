"""The conformance suite: property-based checks of any socketserver-compatible class.

Run it as a library (:func:`check`), from pytest (``--sockharness-conformance=TARGET``,
or subclass :class:`ServerConformance`), or from the command line
(``sockharness conform TARGET``).
"""

from ._properties import PROPERTIES, CheckConfig, Property
from ._pytest import ServerConformance
from ._runner import PROFILES, PropertyResult, Report, check, run_property
from ._target import ServerUnderTest, TargetError, resolve_target

__all__ = [
    "PROFILES",
    "PROPERTIES",
    "CheckConfig",
    "Property",
    "PropertyResult",
    "Report",
    "ServerConformance",
    "ServerUnderTest",
    "TargetError",
    "check",
    "resolve_target",
    "run_property",
]

for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) or callable(_value):
        _value.__module__ = __name__
del _name, _value
