// Placeholder until the GGUF reader lands (owned by the gguf helper).
