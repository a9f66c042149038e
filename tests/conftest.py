"""Under CI (the CI environment variable set) a skipped test fails: CI must run every oracle (TFLM, the
Arm toolchain, QEMU, valgrind, ../shared), and a green run that skipped one would prove nothing. Only a
test that cannot apply on this machine may skip there, with a reason starting "not applicable:"."""
from __future__ import annotations

import os

import pytest

APPLIES_ALWAYS = "not applicable:"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if reason.removeprefix("Skipped: ").startswith(APPLIES_ALWAYS):
        return
    report.outcome = "failed"
    report.longrepr = f"CI must not skip this test (set up what it needs): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped at import (pytest.skip(..., allow_module_level=True)) fails under CI too."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not reason.removeprefix("Skipped: ").startswith(APPLIES_ALWAYS):
            report.outcome = "failed"
            report.longrepr = f"CI must not skip these tests (set up what they need): {reason}"


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: float sums in a fixed order, so runs compare bit for bit."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toolchain() -> None:
    """The Arm toolchain and QEMU: a test that needs them fails under CI when they are missing, else skips."""
    from mcuforge.targets.cortex_m import toolchain_missing

    missing = toolchain_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Cortex-M oracle tests: {missing}", pytrace=False)
        pytest.skip(f"needs arm-none-eabi-gcc and qemu-system-arm ({missing}); on Debian: apt-get install "
                    "--no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
