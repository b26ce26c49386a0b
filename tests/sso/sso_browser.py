"""A person at headless Chromium who signs in at the provider (its development login and consent pages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

Arrived = Callable[[str], bool]


@dataclass
class Visitor:
    """Opens pages in one browser context (one cookie jar) and answers every form on the way."""

    browser: Any
    context: Any = None
    page: Any = None
    seen: list[str] = field(default_factory=list)

    async def open(self) -> Any:
        """The page of this visitor's context, created on first use."""
        if self.page is None:
            self.context = await self.browser.new_context()
            self.page = await self.context.new_page()
        return self.page

    async def close(self) -> None:
        if self.context is not None:
            await self.context.close()

    async def go(self, url: str, login: str, until: Arrived, *, click: str | None = None, timeout: float = 30) -> str:
        """Open ``url`` (then click the link named ``click``), sign in as ``login``; the URL ``until`` accepted."""
        page = await self.open()
        arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def landed(frame: Any) -> None:
            self.seen.append(frame.url)
            if frame.parent_frame is None and until(frame.url) and not arrived.done():
                arrived.set_result(frame.url)

        page.on("framenavigated", landed)
        try:
            with anyio.fail_after(timeout):
                await page.goto(url)
                if click is not None and not arrived.done():
                    async with page.expect_navigation():
                        await page.get_by_role("link", name=click).click()
                while not arrived.done():
                    await self._step(page, login, arrived)
                where = await arrived
                await page.wait_for_load_state()
                return where
        finally:
            page.remove_listener("framenavigated", landed)

    async def text(self) -> str:
        """The visible text of the current page."""
        return str(await (await self.open()).inner_text("body"))

    async def _step(self, page: Any, login: str, arrived: asyncio.Future[str]) -> None:
        """Wait for the provider's sign-in or consent form, or testgate's consent form, and answer it."""
        waits = {
            "login": page.wait_for_selector('input[name="login"]', state="visible"),
            "provider-consent": page.wait_for_selector('input[name="prompt"][value="consent"]', state="attached"),
            "testgate-consent": page.wait_for_selector('button[value="allow"]', state="visible"),
        }
        tasks = {asyncio.ensure_future(w): name for name, w in waits.items()}
        try:
            done, _ = await asyncio.wait({*tasks, arrived}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if arrived.done():
            return
        shown = next(tasks[t] for t in done if t in tasks)
        async with page.expect_navigation():
            if shown == "login":
                await page.fill('input[name="login"]', login)
                await page.fill('input[name="password"]', "any password: development interactions")
                await page.click('button[type="submit"]')
            elif shown == "provider-consent":
                await page.click('button[type="submit"]')
            else:
                await page.click('button[value="allow"]')
