"""Engine backends: ``local`` (transformers), ``replay`` (tests), ``openai`` (remote server)."""
