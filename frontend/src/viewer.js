// The demo viewer: plays a channel with the real IVS web player and shows each cue as it fires.
import { create, isPlayerSupported, PlayerEventType, PlayerState } from "amazon-ivs-player";

import { CueDecoder } from "../../clients/js/cue_decoder.js";

/**
 * What the page saw, for people in the console and for the browser tests.
 * @type {{state: string, channel: string | null, events: Array<{text: string, firedAt: number}>,
 *         cues: import("../../clients/js/cue_decoder.js").Decoded[], errors: string[]}}
 */
const seen = { state: "loading", channel: null, events: [], cues: [], errors: [] };
// @ts-ignore: a global for the tests to read
window.mgViewer = seen;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const MAX_LOG_ENTRIES = 200;
const MAX_KEPT = 1000; // events and cues kept in `window.mgViewer`, the oldest dropped

/** @param {string} tag @param {Record<string, string>} [attrs] @param {...(Node|string)} children */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** @param {string} state */
function setState(state) {
  seen.state = state;
  $("player-state").textContent = state;
}

/** @param {string} message */
function fail(message) {
  seen.errors.push(message);
  setState(`error: ${message}`);
}

/** @param {unknown} value @returns {string} */
function label(value) {
  if (value && typeof value === "object") {
    const item = /** @type {Record<string, unknown>} */ (value);
    return String(item.text ?? item.label ?? JSON.stringify(value));
  }
  return String(value);
}

/** @param {any} data */
function showQuestion(data) {
  const quiz = $("quiz");
  const options = data.options ?? data.choices ?? [];
  const list = el("ol");
  for (const option of Array.isArray(options) ? options : []) {
    const text = label(option);
    const item = el("li", {}, text);
    if (data.answer !== undefined && text === String(data.answer)) item.style.color = "var(--good)";
    list.append(item);
  }
  const question = data.text ?? data.question ?? `Question ${data.question_id}`;
  const answer = data.answer !== undefined ? el("div", { class: "muted" }, `Answer: ${data.answer}`) : "";
  quiz.replaceChildren(el("div", { class: "question" }, String(question)), list, answer);
  quiz.hidden = false;
}

/** @param {any} data @returns {Array<[string, number]>} */
function pollCounts(data) {
  if (Array.isArray(data.options)) {
    return data.options.map((/** @type {any} */ option) => [
      label(option.label ?? option.text ?? option),
      Number(option.votes ?? option.count ?? 0),
    ]);
  }
  const counts = data.votes && typeof data.votes === "object" ? data.votes : data;
  return Object.entries(counts).filter(
    ([name, value]) => name !== "poll_id" && typeof value === "number",
  );
}

/** @param {any} data */
function updatePoll(data) {
  const poll = $("poll");
  const counts = pollCounts(data);
  const total = counts.reduce((sum, [, votes]) => sum + votes, 0) || 1;
  const bars = counts.map(([name, votes]) => {
    const fill = el("div", { class: "fill" });
    fill.style.width = `${Math.round((100 * votes) / total)}%`;
    return el("div", { class: "bar" }, el("span", {}, name), el("div", { class: "track" }, fill), el("span", { class: "mono" }, String(votes)));
  });
  poll.replaceChildren(el("div", { class: "question" }, String(data.title ?? data.question ?? `Poll ${data.poll_id}`)), ...bars);
  poll.hidden = false;
}

/** @param {any} data */
function showCaption(data) {
  const caption = $("caption");
  caption.textContent = String(data.text);
  caption.classList.toggle("partial", data.final === false);
  caption.hidden = false;
}

/** @param {import("../../clients/js/cue_decoder.js").Decoded} item @returns {HTMLElement} */
function logEntry(item) {
  if (item.kind === "raw") {
    return el("li", { "data-raw": "" }, el("span", { class: "tag" }, "raw"), el("code", {}, item.text));
  }
  const data = /** @type {any} */ (item.data);
  let summary = JSON.stringify(data);
  if (item.type === "quiz") summary = String(data?.text ?? data?.question ?? data?.question_id);
  if (item.type === "caption") summary = String(data?.text);
  if (item.type === "poll") summary = pollCounts(data ?? {}).map(([n, v]) => `${n} ${v}`).join(" · ");
  return el(
    "li",
    { "data-cue-id": item.id, "data-type": item.type },
    el("span", { class: "tag" }, item.type),
    `${summary} `,
    el("span", { class: "muted mono" }, item.id),
    " ",
    el("span", { class: "delay" }),
  );
}

/**
 * Show how long after the gateway accepted them the cues appeared.
 * @param {string} channel @param {Map<string, HTMLElement>} entries @param {number} firedAt
 */
async function showDelays(channel, entries, firedAt) {
  const query = new URLSearchParams({ channel });
  for (const id of entries.keys()) query.append("id", id);
  try {
    const answer = await fetch(`/demo/api/accepted?${query}`);
    const { accepted } = await answer.json();
    for (const [id, entry] of entries) {
      const at = accepted[id];
      const delay = /** @type {HTMLElement} */ (entry.querySelector(".delay"));
      delay.textContent = at === undefined ? "" : `+${((firedAt - at) / 1000).toFixed(2)} s`;
      if (at !== undefined) entry.dataset.delayMs = String(firedAt - at);
    }
  } catch (error) {
    seen.errors.push(`accept times: ${error}`);
  }
}

async function main() {
  const name = new URLSearchParams(location.search).get("channel") || "demo";
  $("channel-name").textContent = name;
  /** @type {HTMLAnchorElement} */ ($("console-link")).href = `/console?channel=${encodeURIComponent(name)}`;
  if (!isPlayerSupported) return fail("this browser cannot run the IVS player");
  const answer = await fetch(`/demo/api/playback?channel=${encodeURIComponent(name)}`);
  const info = await answer.json();
  if (!answer.ok) return fail(info.error?.message ?? `HTTP ${answer.status}`);
  seen.channel = info.channel;

  const player = create({
    // The player's worker and wasm come from this origin, next to this bundle.
    wasmWorker: new URL("amazon-ivs-wasmworker.min.js", import.meta.url).href,
    wasmBinary: new URL("amazon-ivs-wasmworker.min.wasm", import.meta.url).href,
  });
  player.attachHTMLVideoElement(/** @type {HTMLVideoElement} */ ($("video")));
  player.setMuted(true); // browsers only autoplay muted video
  player.setAutoplay(true);
  for (const state of [PlayerState.IDLE, PlayerState.READY, PlayerState.BUFFERING, PlayerState.PLAYING, PlayerState.ENDED]) {
    player.addEventListener(state, () => setState(state.toLowerCase()));
  }
  player.addEventListener(PlayerEventType.ERROR, (error) => {
    // The usual cause locally: the gateway runs --local-ivs without --playback, or the
    // channel's stream is not live.
    const hint = error.code === 404 ? " (is the channel live, and the local IVS run with --playback?)" : "";
    fail(`${error.type} ${error.code}: ${error.message}${hint}`);
  });

  // A damaged payload or a cue in parts cut off is shown as an error, never thrown.
  const decoder = new CueDecoder({
    onDamage: (damage) => seen.errors.push(`damaged payload: ${damage.reason}`),
  });
  const log = $("cue-log");
  player.addEventListener(PlayerEventType.TEXT_METADATA_CUE, (cue) => {
    const firedAt = Date.now();
    seen.events.push({ text: cue.text, firedAt });
    if (seen.events.length > MAX_KEPT) seen.events.shift();
    /** @type {Map<string, HTMLElement>} */
    const entries = new Map();
    for (const item of decoder.decode(cue.text)) {
      seen.cues.push(item);
      if (seen.cues.length > MAX_KEPT) seen.cues.shift();
      const entry = logEntry(item);
      log.prepend(entry);
      if (item.kind === "cue") {
        entries.set(item.id, entry);
        if (item.type === "quiz") showQuestion(item.data ?? {});
        else if (item.type === "poll") updatePoll(item.data ?? {});
        else if (item.type === "caption") showCaption(item.data ?? {});
      }
    }
    while (log.childElementCount > MAX_LOG_ENTRIES) log.lastElementChild?.remove();
    if (entries.size) showDelays(info.channel, entries, firedAt);
  });
  player.load(info.playbackUrl);
  player.play();
}

main().catch((error) => fail(String(error)));
