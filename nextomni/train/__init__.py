"""Training entry points: tokenizer warm-up, then the backbone stages."""
