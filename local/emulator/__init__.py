"""A local Yandex Cloud emulator: Cloud Backup, Operation, Compute and IAM over real HTTP on loopback.

    from local.emulator import start_emulator, EmulatorConfig
    emu = start_emulator(EmulatorConfig(port=0, time_scale=60.0))
    emu.url, emu.token, emu.state, emu.stop()

See docs/EMULATOR.md.
"""

from local.emulator.clock import ManualClock
from local.emulator.config import EmulatorConfig
from local.emulator.faults import FaultRule
from local.emulator.records import Failure
from local.emulator.server import EmulatorHandle, start_emulator
from local.emulator.state import EmulatorState

__all__ = [
    "EmulatorConfig",
    "EmulatorHandle",
    "EmulatorState",
    "Failure",
    "FaultRule",
    "ManualClock",
    "start_emulator",
]
