"""A pool of headless Chromium browsers driven by Selenium, always closed, never online.

Starting Chromium costs about a second, so browsers are pooled per process:
:meth:`BrowserPool.acquire` hands out an idle one or starts one, and
:meth:`BrowserPool.release` takes it back. Every browser is quit by
:meth:`BrowserPool.close_all`, which also runs at interpreter exit, so no
Chromium process outlives the program.

Nothing reaches the network: the driver is Debian's ``/usr/bin/chromedriver``
passed explicitly (Selenium Manager, which would download a driver, never
runs), Chromium's background services are off, and its host resolver maps
every name to "not found", so even a page's stray request cannot leave the
machine. Pages are loaded from ``file://`` URLs. Each browser gets its own
temporary profile directory, named with :data:`PROFILE_PREFIX`, which also lets
tests find any process left behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

#: Temporary profile directories of pooled browsers start with this.
PROFILE_PREFIX = "rounds-chromium-"
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-sync",
    "--disable-extensions",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--force-device-scale-factor=1",
    "--window-size=400,400",
)


def find_executable(names: tuple[str, ...], environment_variable: str) -> str | None:
    """The first of ``names`` on the PATH (or the path in ``environment_variable``)."""
    configured = os.environ.get(environment_variable)
    if configured:
        return configured
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_paths() -> tuple[str, str]:
    """Chromium's and chromedriver's paths; a clear error says how to install them."""
    chromium = find_executable(("chromium", "chromium-browser", "google-chrome"), "ROUNDS_CHROMIUM")
    driver = find_executable(("chromedriver",), "ROUNDS_CHROMEDRIVER")
    if chromium is None or driver is None:
        raise RuntimeError(
            "The miniwob backend needs Chromium and its driver: on Debian or Ubuntu run "
            "`apt-get install chromium chromium-driver` (or set ROUNDS_CHROMIUM and "
            "ROUNDS_CHROMEDRIVER), and `pip install 'rounds[gui]'`."
        )
    return chromium, driver


@dataclass
class Browser:
    """One running browser: the Selenium driver and its profile directory."""

    driver: Any
    profile: str

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


class BrowserPool:
    """Idle browsers kept for reuse; every browser it starts is quit by :meth:`close_all`.

    Args:
        max_idle: browsers kept for reuse; more released ones are quit.
        extra_arguments: further Chromium switches (e.g. ``--log-net-log=PATH`` to audit traffic).
    """

    def __init__(self, max_idle: int = 4, extra_arguments: tuple[str, ...] = ()) -> None:
        self.max_idle = max_idle
        self.extra_arguments = extra_arguments
        self._idle: list[Browser] = []
        self._all: list[Browser] = []
        self._lock = threading.Lock()

    def acquire(self) -> Browser:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        browser = self._start()
        with self._lock:
            self._all.append(browser)
        return browser

    def release(self, browser: Browser) -> None:
        """Take a browser back (quit it when enough are idle already)."""
        with self._lock:
            keep = len(self._idle) < self.max_idle and browser in self._all
            if keep:
                self._idle.append(browser)
            elif browser in self._all:
                self._all.remove(browser)
        if not keep:
            browser.quit()

    def close_all(self) -> None:
        """Quit every browser this pool started."""
        with self._lock:
            browsers, self._all, self._idle = self._all, [], []
        for browser in browsers:
            try:
                browser.quit()
            except Exception:  # a browser that already died must not stop the others
                continue

    @property
    def size(self) -> int:
        return len(self._all)

    def _start(self) -> Browser:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, driver_path = chromium_paths()
        profile = tempfile.mkdtemp(prefix=PROFILE_PREFIX)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in (*CHROMIUM_ARGUMENTS, *self.extra_arguments, f"--user-data-dir={profile}"):
            options.add_argument(argument)
        try:
            driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        except Exception:
            shutil.rmtree(profile, ignore_errors=True)
            raise
        return Browser(driver, profile)


#: The process's pool.
POOL = BrowserPool()
atexit.register(POOL.close_all)
