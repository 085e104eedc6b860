"""kotacerdas: platform kota cerdas untuk pemerintah kabupaten/kota."""

__version__ = "0.1.0"
