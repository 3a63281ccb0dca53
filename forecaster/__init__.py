"""wuye-forecaster: per-community forecasts and early warnings for property-management companies."""

__version__ = "0.1.0"
