"""The hot tier: appending records (``emitter``, ``writer``), reading them back (``reader``) and ``verify``."""
