"""Background processing of received messages: orders, replies, retries, sweep, replay and cleanup."""
