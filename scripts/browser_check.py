"""Open an HTML page in a real browser with the network off: headless Chromium from Debian's packages
(/usr/bin/chromium), driven by Playwright. Reports the heatmap panels the page rendered, its console errors and every
request that tried to leave the machine; hovers one panel (the tooltip must appear) and can save a screenshot.

    python scripts/browser_check.py Plots/MiniGPT-2M/Attention_Page_MiniGPT-2M.html --screenshot page.png

Needs requirements-interop.txt (playwright) and `apt-get install chromium`. tests/test_interop.py runs it.
"""
import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# As root in a container Chromium needs --no-sandbox; the rest keep it from calling Google's servers.
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@dataclass
class PageReport:
    panels: dict[str, int]                                # section div id -> heatmaps drawn in it
    errors: list[str] = field(default_factory=list)       # console errors and uncaught exceptions
    blocked: list[str] = field(default_factory=list)      # requests for anything but the file itself
    tooltip: str = ""                                     # the hover label over a cell of the first panel

    def __str__(self):
        return (f"{sum(self.panels.values())} heatmap panels ({', '.join(f'{k}: {v}' for k, v in self.panels.items())}); "
                f"{len(self.errors)} console errors; {len(self.blocked)} blocked requests; hover: {self.tooltip!r}")


def check_page(path, screenshot=None, width: int = 1400, height: int = 1100) -> PageReport:
    from playwright.sync_api import sync_playwright

    path = Path(path).resolve()
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found; install Debian's Chromium: apt-get install chromium")
    errors, blocked = [], []

    def route(r):
        if r.request.url.startswith("file:"):
            return r.continue_()
        blocked.append(r.request.url)
        return r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(offline=True, viewport={"width": width, "height": height}).new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", route)
            page.goto(path.as_uri(), wait_until="load")
            panels = dict(page.evaluate("""() => Array.from(document.querySelectorAll('div[id^="section-"]'),
                d => [d.id, d.querySelectorAll('g.hm image').length])"""))
            tooltip = ""
            first = page.locator("rect.nsewdrag").first  # plotly's mouse layer over the first panel
            if first.count():
                box = first.bounding_box()
                first.hover(position={"x": 0.3 * box["width"], "y": 0.7 * box["height"]})  # a cell below the diagonal
                page.wait_for_timeout(300)
                tooltip = page.evaluate("() => Array.from(document.querySelectorAll('g.hoverlayer text'), "
                                        "t => t.textContent).join(' | ')")
            if screenshot:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return PageReport(panels, errors, blocked, tooltip)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page", help="the HTML file")
    ap.add_argument("--screenshot", help="save a PNG of the first screenful here")
    a = ap.parse_args()
    report = check_page(a.page, a.screenshot)
    print(report)
    for e in report.errors + report.blocked:
        print("  " + e)
    sys.exit(1 if report.errors or report.blocked or not report.panels else 0)


if __name__ == "__main__":
    main()
