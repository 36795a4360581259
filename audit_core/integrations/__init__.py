"""Integrations: the NautilusTrader observer and audited parameters of your own components."""
