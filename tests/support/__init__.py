"""Helpers behind the test fixtures: services (Redis, PostgreSQL, RabbitMQ), child processes, waiting."""
