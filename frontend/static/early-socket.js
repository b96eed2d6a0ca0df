// Two things, first in <head>: the `OpsdeckSocket` class every app socket is made with, and
// a terminal page's socket opened as soon as the page starts loading, before the app's
// code has even arrived: on a reload or a repeat visit of the same terminal page, the
// relay's SSH session then starts beside the download and compile of the app instead of
// after them. On its last visit the app wrote which socket this page opens
// (`opsdeck.earlySocket` in localStorage: the page's address and the socket's URL, made by
// the app from the wire types in `common`); nothing about the wire is decided here. The app
// adopts the socket when it starts, with whatever arrived meanwhile (frontend/src/early.rs),
// or closes it if it wants another. A classic `async` script, first in <head>: it runs as
// soon as it is in (from the cache on a repeat visit) without holding up the parser: as a
// blocking script it ran only ~10 ms sooner on a repeat visit, and on a first visit, where
// it finds nothing to open, it would put a request in the way of everything else.

// `OpsdeckSocket`: the WebSocket interface the app uses (`new`, `readyState`, `send`,
// `close`, `onopen`/`onmessage`/`onclose`), with the socket itself in the page's one socket
// worker (static/socket-worker.js says why), started here as the page loads. Messages always
// arrive as ArrayBuffers or strings. The app falls back to the page's own WebSocket where
// this is not defined (the script has not run yet) and a browser without workers gets that
// here too.
(() => {
  if (typeof Worker === "undefined") return;
  const WORKER = new URL("socket-worker.js", document.baseURI).href;
  // The page's one socket worker (started by its first socket, or warmed up below), and its
  // sockets by id.
  let worker = null;
  const sockets = new Map();
  let lastId = 0;
  const start = (name) => {
    worker = new Worker(WORKER, { name });
    worker.onmessage = ({ data }) => sockets.get(data.id)?.received(data);
    // The worker's script did not load (a deploy without it, a CSP that forbids it): its
    // sockets end as abnormal closes, which the app answers as a dropped network (and the
    // next socket starts a worker again).
    worker.onerror = () => {
      worker = null;
      for (const socket of [...sockets.values()]) {
        socket.ended({ code: 1006, reason: "", wasClean: false });
      }
    };
  };

  class OpsdeckSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;

    // Sockets open or opening in the worker (the browser tests read it).
    static get live() {
      return sockets.size;
    }

    // Starts the worker before the first socket needs it (its start is then off the path of
    // the first socket the app opens).
    static warm() {
      if (!worker) start("");
    }

    constructor(url) {
      this.url = new URL(url, location.href).href;
      this.readyState = OpsdeckSocket.CONNECTING;
      this.binaryType = "arraybuffer";
      this.onopen = null;
      this.onmessage = null;
      this.onclose = null;
      this.id = ++lastId;
      sockets.set(this.id, this);
      if (worker) worker.postMessage({ id: this.id, kind: "open", url: this.url });
      else start(JSON.stringify({ id: this.id, url: this.url }));
    }

    send(data) {
      if (this.readyState !== OpsdeckSocket.OPEN) {
        throw new DOMException("the socket is not open", "InvalidStateError");
      }
      // A view into the app's memory would be cloned whole: send a copy of just its bytes.
      const copy = ArrayBuffer.isView(data) ? data.slice() : data;
      worker.postMessage({ id: this.id, kind: "send", data: copy });
    }

    close(code, reason) {
      if (this.readyState >= OpsdeckSocket.CLOSING) return;
      this.readyState = OpsdeckSocket.CLOSING;
      worker?.postMessage({ id: this.id, kind: "close", code, reason });
    }

    received(message) {
      if (message.kind === "open") {
        if (this.readyState === OpsdeckSocket.CONNECTING) this.readyState = OpsdeckSocket.OPEN;
        this.onopen?.(new Event("open"));
        return;
      }
      for (const item of message.items) {
        if (item instanceof ArrayBuffer || typeof item === "string") {
          this.onmessage?.(new MessageEvent("message", { data: item }));
        } else if (item.close) {
          this.ended(item.close);
          return;
        }
      }
      worker?.postMessage({ id: this.id, kind: "taken" });
    }

    ended(close) {
      if (this.readyState === OpsdeckSocket.CLOSED) return;
      this.readyState = OpsdeckSocket.CLOSED;
      sockets.delete(this.id);
      this.onclose?.(new CloseEvent("close", close));
    }
  }
  window.OpsdeckSocket = OpsdeckSocket;
})();

(() => {
  try {
    const saved = JSON.parse(localStorage.getItem("opsdeck.earlySocket") ?? "null");
    if (!saved || saved.page !== location.href || typeof saved.url !== "string") return;
    const socket = new (window.OpsdeckSocket ?? WebSocket)(saved.url);
    performance.mark("opsdeck:early-socket");
    socket.binaryType = "arraybuffer";
    const early = { url: saved.url, socket, held: [], closed: false };
    // Property handlers, which the app replaces with its own when it adopts the socket.
    socket.onmessage = (event) => early.held.push(event);
    socket.onclose = () => {
      early.closed = true;
    };
    window.__opsdeckEarlySocket = early;
  } catch (e) {
    // No storage, a malformed entry, a URL the browser refuses: the app opens the socket.
  }
  // Without an early socket the worker starts now, idle, so the app's first socket does
  // not wait for it.
  if (!window.__opsdeckEarlySocket) window.OpsdeckSocket?.warm();
})();
