"""Training side of panovlm: reads only the clean manifest the sanitizer writes."""

__version__ = "0.1.0"
