"""edgeface's version, in a module of its own: modules that record it (manifests, MQTT discovery, the CLI) import it
from here rather than from the package, whose ``__init__`` reaches the public API."""

__version__ = "0.1.0"
