"""The trust core: THE record line format, THE chain and seal rules, RFC 6962 trees, signatures, checkpoints.

Imports only the standard library (``cryptography`` lazily, for Ed25519). Every verifier, hot or
cold, asks these modules what a valid record, chain, seal or document is.
"""
