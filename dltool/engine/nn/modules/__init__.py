"""The layer classes of ``dltool.engine.nn``, one family per module."""
