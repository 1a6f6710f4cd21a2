"""CI job lifecycle facts shared by the operator, the sensor and the triggers."""
