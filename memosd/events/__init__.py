"""Events: committed changes published on a ZeroMQ PUB socket and over MQTT."""

from .bus import EventBus, EventSink

__all__ = ["EventBus", "EventSink"]
