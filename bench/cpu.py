"""The platform's CPU share, modelled with a Linux cgroup CPU quota (bench only: nothing deployed imports this).

A function's CPU share follows its memory size. On AWS Lambda 1,769 MB is one vCPU, so a size of M MB gets
M / 1769 of a core; Yandex Cloud Functions documents no share, so the same proportion is assumed. The bench
models it with the cgroup v1 `cpu` controller (mounted at /sys/fs/cgroup/cpu): a group per memory size with
`cpu.cfs_period_us` = 100 ms and `cpu.cfs_quota_us` = M / 1769 of it. A process that joins the group (its pid
written to `cgroup.procs`, threads included) runs at most that long per period.

Two models of when the share applies (docs/BENCHMARKS.md names the sources):
- "aws": Lambda's init phase (interpreter start-up, loading the handler module and its module-level imports)
  runs unthrottled; only the invocation gets the share. The worker joins the group right after `import app`.
- "throttled": the whole process runs under the quota from exec on (the parent's `preexec_fn` joins it). The
  worst case, and Yandex's case until documented otherwise.

Creating groups needs root and a writable cgroup v1 cpu hierarchy. Where that fails, `CpuQuotas.open` says why
and the bench reports unthrottled figures instead. Every group this module creates is removed on close (its
remaining tasks moved back to the group this process started in).

Hand-written (a few file writes): no maintained library wraps cgroup v1 for this; `cgroupspy` is unmaintained
and would add a dependency for four writes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000  # 100 ms, the CFS default
MB_PER_VCPU = 1769  # AWS Lambda: 1,769 MB = one vCPU
MODELS = ("aws", "throttled")


def quota_us(memory_mb: int) -> int:
    """CPU microseconds per 100-ms period for a function of `memory_mb` (at least 1 ms, the kernel's minimum)."""
    return max(1000, round(memory_mb / MB_PER_VCPU * PERIOD_US))


def vcpu_share(memory_mb: int) -> float:
    return memory_mb / MB_PER_VCPU


def join(procs_file: str, pid: int | None = None) -> None:
    """Move process `pid` (default: this one, every thread) into the group whose `cgroup.procs` is `procs_file`."""
    with open(procs_file, "w", encoding="ascii") as fh:
        fh.write(str(os.getpid() if pid is None else pid))


def _own_group(root: Path) -> Path:
    """The cpu group this process lives in (where tasks go back before a group is removed)."""
    try:
        for line in Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                group = root / path.lstrip("/")
                return group if group.is_dir() else root
    except (OSError, ValueError):
        pass
    return root


@dataclass
class CpuQuotas:
    """One cgroup per memory size, created by `open()` and removed by `close()` (or the `with` block)."""

    sizes: Iterable[int]
    root: Path = CGROUP_CPU
    groups: dict[int, Path] = field(default_factory=dict)
    unavailable: str | None = None  # why no group could be created (then every figure runs unthrottled)

    def __enter__(self) -> CpuQuotas:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if not (self.root / "cpu.cfs_quota_us").exists():
            self.unavailable = f"no cgroup v1 cpu controller at {self.root}"
            return
        base = _own_group(self.root)
        try:
            for mb in sorted(set(self.sizes)):
                group = base / f"yc-backup-bench-{os.getpid()}-{mb}mb"
                group.mkdir(exist_ok=True)
                self.groups[mb] = group
                (group / "cpu.cfs_period_us").write_text(str(PERIOD_US), encoding="ascii")
                (group / "cpu.cfs_quota_us").write_text(str(quota_us(mb)), encoding="ascii")
        except OSError as exc:
            self.unavailable = f"cannot create cgroups under {base}: {exc.strerror or exc}"
            self.close()

    def procs_file(self, memory_mb: int) -> str | None:
        group = self.groups.get(memory_mb)
        return None if group is None else str(group / "cgroup.procs")

    def preexec(self, memory_mb: int) -> Callable[[], None] | None:
        """For `subprocess.run(preexec_fn=...)`: the child joins the group before exec ("throttled" model)."""
        procs = self.procs_file(memory_mb)
        if procs is None:
            return None
        return lambda: join(procs)

    def close(self) -> None:
        """Move whatever is left in our groups back to our own group, then remove the groups."""
        home = _own_group(self.root)
        for mb, group in list(self.groups.items()):
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text(encoding="ascii").split():
                    with contextlib.suppress(OSError):
                        join(str(home / "cgroup.procs"), int(pid))
            with contextlib.suppress(OSError):
                group.rmdir()
            del self.groups[mb]
