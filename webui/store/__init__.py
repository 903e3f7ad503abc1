"""The durable store: database binding, models, migrations and read queries."""
