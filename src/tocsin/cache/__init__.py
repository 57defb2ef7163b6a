"""Caches the API reads from: per-entity state kept in Redis by the workers."""

from tocsin.cache.redis import EntityCache

__all__ = ["EntityCache"]
