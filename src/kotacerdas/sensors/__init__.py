"""Connected devices: the OGC SensorThings API, MQTT ingest, current values and rules."""
