"""A person at a browser: headless Debian Chromium, driven by Playwright, signing in and allowing access."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

PASSWORD = "correct horse battery staple"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Person:
    """Someone at a browser who signs in and allows what an application asks for."""

    browser: Any
    email: str = "ada@example.com"
    password: str = PASSWORD
    consent_pages: list[str] = field(default_factory=list)

    async def authorize(self, url: str, *, timeout: float = 30) -> str:
        """Open ``url``, sign in and allow as needed; returns the URL the browser was sent back to."""
        context = await self.browser.new_context()
        page = await context.new_page()
        arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server = urlsplit(url).netloc

        def landed(frame: Any) -> None:
            here = urlsplit(frame.url)
            if frame.parent_frame is None and here.netloc not in ("", server) and not arrived.done():
                arrived.set_result(frame.url)

        page.on("framenavigated", landed)
        try:
            with anyio.fail_after(timeout):
                await page.goto(url)
                while not arrived.done():
                    await self._step(page, arrived)
                return await arrived
        finally:
            await context.close()

    async def _step(self, page: Any, arrived: asyncio.Future[str]) -> None:
        """Wait for the sign-in form, the consent form or the way back, and act on the first to show."""
        login = asyncio.ensure_future(page.wait_for_selector('input[name="email"]', state="visible"))
        allow = asyncio.ensure_future(page.wait_for_selector('button[value="allow"]', state="visible"))
        done, _ = await asyncio.wait({login, allow, arrived}, return_when=asyncio.FIRST_COMPLETED)
        for task in (login, allow):
            task.cancel()
        await asyncio.gather(login, allow, return_exceptions=True)
        if arrived.done():
            return
        # Each form post navigates; waiting for it keeps the next step from acting on the old page.
        if login in done:
            await page.fill('input[name="email"]', self.email)
            await page.fill('input[name="password"]', self.password)
            async with page.expect_navigation():
                await page.click('button[type="submit"]')
        elif allow in done:
            self.consent_pages.append(await page.content())
            async with page.expect_navigation():
                await page.click('button[value="allow"]')
