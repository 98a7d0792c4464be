"""The embedded local stack of real engines (Kafka, Elasticsearch, a Ray head) behind `ray-app stack`."""
