"""MQTT → PostgreSQL: validate every message, store readings in batches, acknowledge each
message only after the batch that holds it committed, dead-letter what is bad."""
