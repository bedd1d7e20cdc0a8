"""Redis access. Every key name lives in keys.py; every Redis error becomes StoreUnavailable."""
from ccengine.store.base import RedisConnection, StoreUnavailable, as_deferred

__all__ = ["RedisConnection", "StoreUnavailable", "as_deferred"]
