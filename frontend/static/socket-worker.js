// The WebSockets of one page, owned by a dedicated worker so that receiving them never waits
// for the page's main thread (see `OpsdeckSocket` in early-socket.js, the page's side; one
// such worker serves all the sockets of a page).
//
// Why: a page's WebSocket hands its messages to the main thread through a small buffer
// (about 128 KiB in Chromium) that is only emptied between the main thread's tasks. While a
// terminal shows a flood of output, the main thread is busy parsing and drawing, so each
// turn took in only what fitted that buffer and then drew a frame for it: the page showed
// about 16 MB/s from a relay sending 40. This worker's thread is free to take everything as
// it comes; for each socket it hands the page all that arrived since the page's last turn,
// in order, as one message (ArrayBuffers transferred, not copied), and sends the next batch
// once the page says it has taken the previous one. An echo arriving at an idle page goes
// at once.
//
// The worker's name may carry a first socket, `{"id": 1, "url": "ws://…"}`, opened as soon
// as this script runs: a message posted to a worker that is still starting waits for the
// page's main thread, which is busy starting the app (25 ms later in a trace).
// Messages from the page: {id, kind: "open", url} | {id, kind: "send", data} |
// {id, kind: "close", code, reason} | {id, kind: "taken"}.
// Messages to the page: {id, kind: "open"} | {id, kind: "batch", items} where each item is
// an ArrayBuffer, a string, or {close: {code, reason, wasClean}} (the socket's end, after
// all it received; the page forgets the socket then, and so does this worker).
const sockets = new Map();

const hand = (id, state) => {
  if (state.handed || state.items.length === 0) return;
  state.handed = true;
  const items = state.items;
  state.items = [];
  postMessage(
    { id, kind: "batch", items },
    items.filter((item) => item instanceof ArrayBuffer),
  );
  // The end went with this batch: nothing more comes for this socket.
  if (state.ended) sockets.delete(id);
};

const end = (id, state, code, reason, wasClean) => {
  if (state.ended) return;
  state.ended = true;
  state.items.push({ close: { code, reason, wasClean } });
  hand(id, state);
};

const open = (id, url) => {
  const state = { socket: null, items: [], handed: false, ended: false };
  sockets.set(id, state);
  try {
    state.socket = new WebSocket(url);
  } catch (e) {
    end(id, state, 1015, `cannot open ${url}: ${e}`, false);
    return;
  }
  state.socket.binaryType = "arraybuffer";
  state.socket.onopen = () => postMessage({ id, kind: "open" });
  state.socket.onmessage = (event) => {
    state.items.push(event.data);
    hand(id, state);
  };
  state.socket.onclose = (event) => end(id, state, event.code, event.reason, event.wasClean);
};

onmessage = ({ data: message }) => {
  const { id } = message;
  if (message.kind === "open") {
    open(id, message.url);
    return;
  }
  const state = sockets.get(id);
  if (!state) return;
  const socket = state.socket;
  switch (message.kind) {
    case "send":
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(message.data);
      break;
    case "close":
      if (socket && socket.readyState < WebSocket.CLOSING) socket.close(message.code, message.reason);
      else end(id, state, message.code ?? 1000, message.reason ?? "", true);
      break;
    case "taken":
      state.handed = false;
      hand(id, state);
      break;
  }
};

if (self.name) {
  try {
    const first = JSON.parse(self.name);
    open(first.id, first.url);
  } catch (e) {
    // Not a socket: the page opens its sockets by message.
  }
}
