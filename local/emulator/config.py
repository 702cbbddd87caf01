"""EmulatorConfig: everything fixed when the emulator starts (most of it can be changed later on `emu.state`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PROGRESS_MODES = ("number", "string", "none")


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    # Nominal durations (backups, apply/revoke) last duration / time_scale seconds of `clock`.
    time_scale: float = 1.0
    # Epoch seconds; injectable so a benchmark can drive a virtual clock. None: time.time.
    clock: Callable[[], float] | None = None
    # Seeds the RNGs (fault draws, generated ids): the same seed and the same calls give the same run.
    seed: str | int = "demo"
    # Start with the demo folder (local.emulator.seed); False: empty state (tokens must be added by hand).
    demo: bool = True
    # Lifetime of tokens issued by POST /iam/v1/tokens, in clock seconds (the real maximum is 12 hours).
    token_lifetime: float = 12 * 3600.0
    # Nominal duration of one backup when the instance sets none (seconds).
    default_backup_duration: float = 600.0
    # Nominal duration of Apply / Revoke operations (seconds).
    apply_duration: float = 5.0
    # How ExecuteMetadata.progressPercentage is rendered: "number" (proto double), "string", "none" (never set).
    progress_mode: str = "number"
    # Log every request on stderr.
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if self.progress_mode not in PROGRESS_MODES:
            raise ValueError(f"progress_mode must be one of {PROGRESS_MODES}")
