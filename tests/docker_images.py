"""Local test images for the real Docker engine (no registry is reachable): a busybox rootfs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["BUSYBOX_IMAGE", "ensure_busybox_image"]

BUSYBOX_IMAGE = "unidesk-test/busybox:1"


def ensure_busybox_image(tag: str = BUSYBOX_IMAGE) -> str:
    """Import ``tag`` from the host's static busybox (every applet linked) unless it exists."""
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp, "bin")
        bin_dir.mkdir()
        shutil.copy2(busybox, bin_dir / "busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
        for name in applets.stdout.split():
            if name != "busybox":
                (bin_dir / name).symlink_to("busybox")
        for extra in ("tmp", "workspace", "proc", "sys", "dev", "etc"):
            Path(tmp, extra).mkdir()
        tar = subprocess.Popen(["tar", "-C", tmp, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-", tag], stdin=tar.stdout, check=True, capture_output=True
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the busybox rootfs failed")
    return tag
