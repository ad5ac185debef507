// The operator console: sends cues over the gateway's public WebSocket API (`/v1/ws`) and shows
// what became of them; reads the channel list and queue from the public HTTP API. No build step.

const $ = (id) => document.getElementById(id);
const QUEUE_REFRESH_MS = 1000;
const RECONNECT_MS = 2000;
const MAX_ROWS = 300;
// The gateway's WebSocket protocol, and the one that carries the token (browsers can set no
// header on a WebSocket): see docs/websocket.md.
const WS_PROTOCOL = "metadata-gateway.v1";
const WS_BEARER_PREFIX = "metadata-gateway.bearer.";
const TOKEN_KEY = "metadata-gateway.token"; // in sessionStorage: this tab only, never in a URL

let socket = null;
let nextRef = 1;
const rows = new Map(); // cue id -> its table row
const sentAt = new Map(); // cue id -> when the console sent it (ms), for the receipt's latency
const refs = new Map(); // ref -> {type, at, scheduled, row}: frames not yet acked

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function addRow(ref, id, type, status, detail = "") {
  const tr = document.createElement("tr");
  tr.dataset.ref = String(ref);
  if (id) tr.dataset.id = id;
  tr.dataset.status = status;
  tr.append(cell(String(ref), "mono"), cell(id ?? "", "mono"), cell(type), cell(status, `status ${status}`), cell(""), cell(detail, "muted"));
  $("log").prepend(tr);
  while ($("log").childElementCount > MAX_ROWS) $("log").lastElementChild.remove();
  return tr;
}

function setStatus(tr, status, latency, detail) {
  tr.dataset.status = status;
  const cells = tr.children;
  cells[3].textContent = status;
  cells[3].className = `status ${status}`;
  if (latency !== undefined) cells[4].textContent = latency;
  if (detail !== undefined) cells[5].textContent = detail;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

function authHeaders() {
  return token() ? { Authorization: `Bearer ${token()}` } : {};
}

async function api(path) {
  const answer = await fetch(path, { headers: authHeaders() });
  const body = await answer.json();
  $("auth-state").textContent = answer.status === 401 ? "the gateway needs a valid API token" : "";
  if (!answer.ok) throw new Error(body.error?.message ?? answer.status);
  return body;
}

function channel() {
  return $("channel").value;
}

function send(cue) {
  const ref = nextRef++;
  const frame = { op: "cue", ref, channel: channel(), ...cue };
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    addRow(ref, cue.id, cue.type, "nack", "not connected");
    return;
  }
  socket.send(JSON.stringify(frame));
  const row = addRow(ref, cue.id, cue.type, "pending");
  refs.set(ref, { type: cue.type, at: Date.now(), scheduled: cue.not_before !== undefined, row });
}

function onAck(message) {
  const pending = refs.get(message.ref);
  refs.delete(message.ref);
  for (const [index, entry] of message.cues.entries()) {
    const tr = index === 0 && pending ? pending.row : addRow(message.ref, entry.id, pending?.type ?? "", "pending");
    tr.dataset.id = entry.id;
    tr.children[1].textContent = entry.id;
    const delivered = entry.delivered === true ? "already delivered" : "";
    const held = entry.status === "queued" && pending?.scheduled;
    setStatus(tr, held ? "scheduled" : entry.status, undefined, delivered);
    rows.set(entry.id, tr);
    sentAt.set(entry.id, pending?.at ?? Date.now());
  }
}

function onNack(message) {
  const pending = refs.get(message.ref);
  refs.delete(message.ref);
  const error = message.error ?? {};
  const text = `${error.code}: ${error.message}`;
  if (pending) setStatus(pending.row, "nack", "", text);
  else addRow(message.ref ?? "", "", "", "nack", text);
}

function onReceipt(message) {
  for (const id of message.ids) {
    const tr = rows.get(id);
    if (!tr) continue;
    if (message.op === "sent") {
      // `at` is when IVS answered, on the gateway's clock (Unix seconds).
      const latency = Math.round(message.at * 1000 - (sentAt.get(id) ?? message.at * 1000));
      setStatus(tr, "sent", `${latency} ms`, `IVS accepted at ${new Date(message.at * 1000).toLocaleTimeString()}`);
    } else {
      setStatus(tr, "dropped", "", message.reason);
    }
    rows.delete(id);
    sentAt.delete(id);
  }
}

function connect() {
  const url = new URL("/v1/ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const protocols = token() ? [WS_PROTOCOL, `${WS_BEARER_PREFIX}${token()}`] : [WS_PROTOCOL];
  socket = new WebSocket(url, protocols);
  socket.addEventListener("open", () => ($("ws-state").textContent = "connected"));
  socket.addEventListener("close", () => {
    $("ws-state").textContent = "disconnected; reconnecting";
    setTimeout(connect, RECONNECT_MS);
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.op === "ack") onAck(message);
    else if (message.op === "nack") onNack(message);
    else if (message.op === "sent" || message.op === "dropped") onReceipt(message);
  });
}

async function loadChannels() {
  const select = $("channel");
  const wanted = select.value || new URLSearchParams(location.search).get("channel") || "demo";
  let channels;
  try {
    ({ channels } = await api("/v1/channels?limit=100"));
  } catch {
    return;
  }
  select.replaceChildren(
    ...channels.map((entry) => {
      const option = document.createElement("option");
      option.value = entry.alias ?? entry.channel;
      option.textContent = entry.alias ?? entry.channel.split("/").pop();
      option.title = entry.channel;
      return option;
    }),
  );
  if ([...select.options].some((option) => option.value === wanted)) select.value = wanted;
  channelChanged();
}

function channelChanged() {
  $("viewer-link").href = `/viewer?channel=${encodeURIComponent(channel())}`;
  refreshQueue();
}

async function refreshQueue() {
  if (!channel()) return;
  try {
    const info = await api(`/v1/channels/${encodeURIComponent(channel())}`);
    const fields = ["live", "pending", "pending_bytes", "scheduled", "repeating", "sent_requests", "delivered_cues", "last_error"];
    $("queue").replaceChildren(
      ...fields.flatMap((name) => {
        const dt = document.createElement("dt");
        dt.textContent = name;
        const dd = document.createElement("dd");
        dd.textContent = JSON.stringify(info[name]);
        dd.dataset.field = name;
        return [dt, dd];
      }),
    );
    const scheduled = info.scheduled_cues.map((cue) => `scheduled ${cue.id} at ${new Date(cue.not_before * 1000).toLocaleTimeString()}`);
    const repeating = info.repeating_cues.map((cue) => `repeating ${cue.id} (${cue.key}) every ${cue.repeat_ms} ms`);
    $("queue-lists").replaceChildren(...[...scheduled, ...repeating].map((text) => Object.assign(document.createElement("div"), { textContent: text })));
    $("queue-updated").textContent = new Date().toLocaleTimeString();
  } catch (error) {
    $("queue-updated").textContent = `unavailable: ${error.message}`;
  }
}

function uniqueId(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

function onSubmit(id, build) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      send(build());
    } catch (error) {
      addRow("", "", "", "nack", String(error.message ?? error));
    }
  });
}

onSubmit("quiz-form", () => {
  const id = uniqueId("q");
  const options = $("quiz-options").value.split(",").map((text) => text.trim()).filter(Boolean);
  return { type: "quiz", id, priority: "high", data: { question_id: id, text: $("quiz-text").value, options } };
});
onSubmit("poll-form", () => {
  const data = { poll_id: $("poll-id").value };
  for (const pair of $("poll-counts").value.split(",")) {
    const [name, votes] = pair.split("=").map((part) => part.trim());
    if (name) data[name] = Number(votes) || 0;
  }
  return { type: "poll", id: uniqueId("p"), data };
});
onSubmit("caption-form", () => ({
  type: "caption",
  id: uniqueId("c"),
  data: { text: $("caption-text").value, final: !$("caption-partial").checked },
}));
onSubmit("state-form", () => ({
  type: "state",
  id: uniqueId("s"),
  key: $("state-key").value,
  repeat_ms: Number($("state-repeat").value),
  data: JSON.parse($("state-data").value),
}));
onSubmit("scheduled-form", () => {
  const id = uniqueId("q");
  return {
    type: "quiz",
    id,
    not_before: Date.now() + 1000 * Number($("scheduled-delay").value),
    data: { question_id: id, text: $("scheduled-text").value },
  };
});
$("token").value = token();
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  socket?.close(); // it reconnects with the new token
  loadChannels();
});
$("channel").addEventListener("change", channelChanged);
$("refresh-channels").addEventListener("click", () => loadChannels());

connect();
loadChannels();
setInterval(refreshQueue, QUEUE_REFRESH_MS);
