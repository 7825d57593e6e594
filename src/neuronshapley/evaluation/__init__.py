"""Consumers of a ranking: removal curves and baseline rankings."""
