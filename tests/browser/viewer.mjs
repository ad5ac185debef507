// The viewer loop in a real browser: posts cues to the gateway while the demo viewer plays the
// channel with amazon-ivs-player, and reports what the player fired and what the page shows.
// Usage: node viewer.mjs CONFIG.json (written by tests/test_viewer_browser.py)
import { config, report, withPage } from "./launch.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const settings = await config();

const result = await withPage(settings.userDataDir, async (page) => {
  const started = Date.now();
  await page.goto(`${settings.gateway}/viewer?channel=${encodeURIComponent(settings.channel)}`);
  await page.waitForFunction(() => window.mgViewer?.state === "playing", null, {
    timeout: settings.playingTimeoutMs,
  });
  const playingAfterMs = Date.now() - started;

  const posted = Date.now();
  const answers = [];
  for (const [index, round] of settings.rounds.entries()) {
    if (index > 0) await sleep(settings.roundGapMs);
    const response = await fetch(`${settings.gateway}/v1/cues`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ cues: round }),
    });
    answers.push({ status: response.status, body: await response.json() });
  }

  await page.waitForFunction((count) => window.mgViewer.cues.length >= count, settings.expected, {
    timeout: settings.cuesTimeoutMs,
  });
  const allCuesAfterMs = Date.now() - posted;
  // A little longer, so a repeat or an extra cue would show up too.
  await sleep(settings.settleMs);
  const seen = await page.evaluate(() => window.mgViewer);
  const shown = await page.$$eval("#cue-log li[data-cue-id]", (items) =>
    items.map((item) => ({
      id: item.dataset.cueId,
      type: item.dataset.type,
      delayMs: item.dataset.delayMs === undefined ? null : Number(item.dataset.delayMs),
    })),
  );
  const rawShown = await page.$$eval("#cue-log li[data-raw] code", (items) => items.map((item) => item.textContent));
  const panels = await page.evaluate(() => ({
    quiz: document.getElementById("quiz").hidden ? null : document.getElementById("quiz").innerText,
    poll: document.getElementById("poll").hidden ? null : document.getElementById("poll").innerText,
    caption: document.getElementById("caption").hidden ? null : document.getElementById("caption").innerText,
  }));
  if (settings.screenshot) await page.screenshot({ path: settings.screenshot });
  return { answers, playingAfterMs, allCuesAfterMs, ...seen, shown, rawShown, panels };
});
report(result);
