"""Citizen reports (aduan warga): categories, the SP4N-LAPOR!-style workflow, public tracking, Open311 GeoReport v2."""
