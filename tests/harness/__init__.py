"""Real servers for the tests: a Kafka 4 broker and a Milvus standalone server."""
