// The operator console in a real browser: send a quiz question with a click and wait for its
// `sent` receipt to appear.
// Usage: node console.mjs CONFIG.json (written by tests/test_viewer_browser.py)
import { config, report, withPage } from "./launch.mjs";

const settings = await config();

const result = await withPage(settings.userDataDir, async (page) => {
  await page.goto(`${settings.gateway}/console?channel=${encodeURIComponent(settings.channel)}`);
  let refusedBeforeToken = null;
  if (settings.token) {
    // Without it the gateway refuses the page's API calls and its WebSocket.
    await page.locator("#auth-state", { hasText: "token" }).waitFor({ timeout: 10_000 });
    refusedBeforeToken = await page.locator("#ws-state").innerText();
    await page.locator("#token").fill(settings.token);
    await page.locator("#token-save").click();
  }
  await page.locator("#ws-state", { hasText: /^connected$/ }).waitFor({ timeout: 10_000 });
  await page.locator("#quiz-text").fill(settings.question);
  await page.locator("#send-quiz").click();
  const row = page.locator("#log tr[data-status='sent']");
  await row.first().waitFor({ timeout: settings.receiptTimeoutMs });
  const cells = await row.first().locator("td").allInnerTexts();
  const queue = await page.locator("#queue dd[data-field='sent_requests']").innerText();
  return {
    receipt: { ref: cells[0], id: cells[1], type: cells[2], status: cells[3], latency: cells[4] },
    queueSentRequests: queue,
    refusedBeforeToken,
    url: page.url(),
    authState: await page.locator("#auth-state").innerText(),
  };
});
report(result);
