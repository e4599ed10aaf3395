"""Models, losses, Ray Train training and retrieval evaluation."""

#: the model config `make demo` trains and `priorsight bench retrieval` compares: the pretrained
#: backbone frozen at 224 px, heads trained on its cached features (docs/training.md)
DEFAULT_MODEL = "efficientnet-lite0-frozen-256"
