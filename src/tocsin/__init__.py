"""tocsin: real-time anomaly detection over event streams."""

__version__ = "0.1.0"
