"""The WSOL methods, one module each; the table that names them is ``registry.py``."""
