"""edgeface: make face-recognition models small and fast, prove accuracy on the exported file, run them on the edge."""

__version__ = "0.1.0"
