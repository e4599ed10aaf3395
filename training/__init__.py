"""Models, losses, Ray Train training and retrieval evaluation."""

#: the model config `make demo` trains and `priorsight bench retrieval` compares: the pretrained
#: EfficientNet-Lite0 at 224 px, its first 12 modules frozen (their output cached for 8 views of
#: every drawing), its last blocks, head and the words head trained (docs/training.md)
DEFAULT_MODEL = "efficientnet-lite0-tail-256"
