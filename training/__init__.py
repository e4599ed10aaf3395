"""Models, losses, Ray Train training and retrieval evaluation."""
