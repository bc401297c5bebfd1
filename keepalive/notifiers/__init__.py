"""Alert channels. Each one classifies its own errors; retries live in the outbox."""
