"""Sensor data in: the OGC SensorThings API 1.1 on the twin's tables, the MQTT bridge and the
in-process feed of new readings that the live map follows."""
