"""Delivery: the durable outbox, the retry/digest policy and the worker that sends alerts."""
