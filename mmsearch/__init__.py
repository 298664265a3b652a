"""mmsearch: local-first multimodal image search (CLIP + Milvus)."""

__version__ = "0.1.0"
