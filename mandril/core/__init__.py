"""What every part of mandril shares: atomic writers, the one checkpoint format, the one typed
TOML -> dataclass loader."""

from mandril.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mandril.core.config import build_dataclass, dataclass_to_dict, load_toml
from mandril.core.io import atomic_write_bytes, atomic_write_text, read_csv, write_csv, write_json

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_text",
    "build_dataclass",
    "dataclass_to_dict",
    "load_checkpoint",
    "load_toml",
    "read_csv",
    "save_checkpoint",
    "write_csv",
    "write_json",
]
