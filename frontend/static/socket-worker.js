// One WebSocket to the relay, owned by a dedicated worker so that receiving it never waits
// for the page's main thread (see `OpsdeckSocket` in early-socket.js, the page's side).
//
// Why: a page's WebSocket hands its messages to the main thread through a small buffer
// (about 128 KiB in Chromium) that is only emptied between the main thread's tasks. While a
// terminal shows a flood of output, the main thread is busy parsing and drawing, so each
// turn took in only what fitted that buffer and then drew a frame for it: the page showed
// about 16 MB/s from a relay sending 40. This worker's thread is free to take everything as
// it comes; it hands the page all that arrived since the page's last turn, in order, as one
// message (ArrayBuffers transferred, not copied), and sends the next batch once the page
// says it has taken the previous one. An echo arriving at an idle page goes at once.
//
// The socket's URL is the worker's name (`new Worker(url, {name})`), so the socket goes out
// as soon as this script runs: a message posted to a worker that is still starting waits for
// the page's main thread, which is busy starting the app (25 ms later in a trace).
// Messages from the page: {kind: "send", data} | {kind: "close", code, reason} |
// {kind: "taken"}.
// Messages to the page: {kind: "open"} | {kind: "batch", items} where each item is an
// ArrayBuffer, a string, or {close: {code, reason, wasClean}} (the socket's end, after all
// it received).
let socket = null;
let items = [];
let handed = false;
let ended = false;

const hand = () => {
  if (handed || items.length === 0) return;
  handed = true;
  const batch = items;
  items = [];
  postMessage(
    { kind: "batch", items: batch },
    batch.filter((item) => item instanceof ArrayBuffer),
  );
};

const end = (code, reason, wasClean) => {
  if (ended) return;
  ended = true;
  items.push({ close: { code, reason, wasClean } });
  hand();
};

const open = (url) => {
  try {
    socket = new WebSocket(url);
  } catch (e) {
    end(1015, `cannot open ${url}: ${e}`, false);
    return;
  }
  socket.binaryType = "arraybuffer";
  socket.onopen = () => postMessage({ kind: "open" });
  socket.onmessage = (event) => {
    items.push(event.data);
    hand();
  };
  socket.onclose = (event) => end(event.code, event.reason, event.wasClean);
};

onmessage = ({ data: message }) => {
  switch (message.kind) {
    case "send":
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(message.data);
      break;
    case "close":
      if (socket && socket.readyState < WebSocket.CLOSING) socket.close(message.code, message.reason);
      else end(message.code ?? 1000, message.reason ?? "", true);
      break;
    case "taken":
      handed = false;
      hand();
      break;
  }
};

open(self.name);
