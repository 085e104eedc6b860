"""Events and warnings (peristiwa): incidents, hazard warnings and public activities, their live stream and feeds."""
