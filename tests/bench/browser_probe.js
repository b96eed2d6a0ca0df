// The `browser` workload's probe. Chromium runs it at the start of every document of the
// bench's session (Page.addScriptToEvaluateOnNewDocument), before any of the page's own
// scripts, so everything is timed inside the page: each time is `performance.now()`,
// milliseconds since the navigation started (`performance.timeOrigin`), and no WebDriver
// round trip or polling is part of a figure.
//
// It keeps what it sees in `window.__opsdeckProbe`:
// - `longTasks`: every long task (> 50 ms on the main thread) since the navigation, from a
//   buffered PerformanceObserver;
// - `received`: the bytes of binary WebSocket messages the page received (terminal output),
//   `lastMessage` when the latest message came; `created`, `opened`, `firstMessage` and
//   `firstOutput` when the first socket was made, opened, first heard from the relay and
//   first received output (a binary message: the shell's prompt); `receivedText`, the characters of
//   text messages (the peer's, WeTTY's socket.io, carry its output as text);
// - `type(keys)`: types into the terminal as a keystroke does (an `input` event at
//   xterm.js's textarea, which xterm.js turns into `onData`), returning when;
// - `when(test, ms)`: a promise of the time the terminal's screen first passes `test`.
//   The screen is read from xterm.js's buffer (the rows in view), checked each time
//   xterm.js reports it rendered rows (`onRender`), so the time is when it was drawn, by
//   the DOM renderer or by WebGL alike (WebGL draws no text into the DOM).
// - on a terminal page (`#/ssh/...`, or the peer's page, which the bench names in
//   `window.__opsdeckPeerPage` before this runs), `interactive`: a promise of the
//   page-load milestones:
//   the first output (the shell's prompt) on screen, then `echo READY-$((6*7))` typed at
//   once and its output on screen.
(() => {
  const probe = {
    longTasks: [],
    received: 0,
    // How many binary messages carried `received` (their average size is what each one
    // costs the page to take in).
    messages: 0,
    receivedText: 0,
    lastMessage: null,
    created: null,
    opened: null,
    firstMessage: null,
    firstOutput: null,
  };
  window.__opsdeckProbe = probe;

  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        probe.longTasks.push({ start: entry.startTime, duration: entry.duration });
      }
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {
    probe.longTaskError = String(e);
  }

  // Counts terminal output as it arrives; the app's sockets are otherwise untouched. The
  // app's sockets receive in a worker (`socket-worker.js`, which hands the page batches of
  // messages); the peer's are the page's own WebSockets.
  const arrived = (data, now) => {
    probe.firstMessage ??= now;
    probe.lastMessage = now;
    if (data instanceof ArrayBuffer) {
      probe.firstOutput ??= now;
      probe.received += data.byteLength;
      probe.messages += 1;
    } else if (typeof data === "string") probe.receivedText += data.length;
  };
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      probe.created ??= performance.now();
      this.addEventListener("open", () => {
        probe.opened ??= performance.now();
      });
      this.addEventListener("message", (event) => arrived(event.data, performance.now()));
    }
  };
  const NativeWorker = window.Worker;
  window.Worker = class extends NativeWorker {
    constructor(url, options) {
      super(url, options);
      if (!String(url).includes("socket-worker")) return;
      // A socket is made when the worker starts with one (its name) or is asked to open one.
      if (options?.name) probe.created ??= performance.now();
      const post = this.postMessage.bind(this);
      this.postMessage = (message, ...rest) => {
        if (message?.kind === "open") probe.created ??= performance.now();
        return post(message, ...rest);
      };
      this.addEventListener("message", ({ data }) => {
        const now = performance.now();
        if (data.kind === "open") probe.opened ??= now;
        else if (data.kind === "batch") for (const item of data.items) arrived(item, now);
      });
    }
  };

  // The terminal's host element (`.terminal-host`, carrying the xterm.js Terminal as
  // `__opsdeckTerminal`; WeTTY's page keeps its Terminal in `window.wetty_term`, in
  // `#terminal`) and the text of the rows in view.
  const host = () => document.querySelector(".terminal-host") ?? document.querySelector("#terminal");
  const terminal = () => host()?.__opsdeckTerminal ?? window.wetty_term ?? null;
  const rowsText = () => {
    const t = terminal();
    if (!t) return "";
    const buffer = t.buffer.active;
    let text = "";
    for (let row = 0; row < t.rows; row++) {
      const line = buffer.getLine(buffer.viewportY + row);
      if (line) text += line.translateToString(true) + "\n";
    }
    return text;
  };
  probe.shows = (needle) => () => rowsText().includes(needle);

  probe.type = (keys) => {
    const input = host()?.querySelector("textarea.xterm-helper-textarea");
    if (!input) throw new Error("the terminal has no input element");
    const at = performance.now();
    input.dispatchEvent(new InputEvent("input", { data: keys, inputType: "insertText" }));
    return at;
  };

  // Until the app has made its terminal, DOM mutations say when to look again; from then
  // on, each render does.
  probe.when = (test, ms) =>
    new Promise((resolve, reject) => {
      if (test()) return resolve(performance.now());
      let observer = null;
      let rendering = null;
      const stop = () => {
        observer?.disconnect();
        rendering?.dispose();
        clearTimeout(timer);
      };
      const check = () => {
        if (test()) {
          const at = performance.now();
          stop();
          resolve(at);
        }
      };
      const follow = () => {
        const t = terminal();
        if (!t || rendering) return false;
        observer?.disconnect();
        rendering = t.onRender(check);
        return true;
      };
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`not on screen within ${ms} ms; the terminal shows: ${rowsText().trim().slice(-300)}`));
      }, ms);
      if (!follow()) {
        observer = new MutationObserver(() => {
          if (follow()) check();
        });
        observer.observe(document, { childList: true, subtree: true });
      }
    });

  // The same shape of output written straight into the app's terminal from memory, no
  // network and no app in between, one 64 KiB write in flight at a time: what xterm.js and
  // this browser can show at best. `bytes` of base64 in 200-character lines (as the bulk
  // command's, with the PTY's \r\n), then `marker`; resolves to {start, done, bytes}.
  // Prepared first (`prepareAlone`), so a profile of `alone` covers only the writing.
  probe.prepareAlone = (bytes, marker) => {
    const encoder = new TextEncoder();
    const raw = new Uint8Array(Math.ceil((bytes * 3) / 4));
    for (let at = 0; at < raw.length; at += 65536) {
      crypto.getRandomValues(raw.subarray(at, Math.min(at + 65536, raw.length)));
    }
    let text = "";
    const parts = [];
    for (let at = 0; at < raw.length; at += 150) {
      text += btoa(String.fromCharCode(...raw.subarray(at, at + 150))) + "\r\n";
      if (text.length > 1 << 20) {
        parts.push(encoder.encode(text));
        text = "";
      }
    }
    parts.push(encoder.encode(text + marker + "\r\n"));
    const chunks = [];
    for (const part of parts) {
      for (let at = 0; at < part.length; at += 65536) chunks.push(part.subarray(at, at + 65536));
    }
    probe.aloneChunks = { chunks, marker };
  };
  probe.alone = async (ms) => {
    const t = terminal();
    if (!t) throw new Error("no terminal");
    const { chunks, marker } = probe.aloneChunks;
    const total = chunks.reduce((sum, c) => sum + c.length, 0);
    const start = performance.now();
    const shown = probe.when(probe.shows(marker), ms);
    await new Promise((resolve) => {
      let next = 0;
      const write = () => {
        if (next === chunks.length) return resolve();
        t.write(chunks[next++], write);
      };
      write();
    });
    const done = await shown;
    return { start, done, bytes: total };
  };

  const terminalPage =
    location.hash.startsWith("#/ssh/") ||
    (window === window.top && location.href === window.__opsdeckPeerPage);
  if (terminalPage) {
    probe.interactive = (async () => {
      const prompt = await probe.when(() => rowsText().trim() !== "", 60000);
      const typed = probe.type("echo READY-$((6*7))\r");
      const ready = await probe.when(probe.shows("READY-42"), 60000);
      const nav = performance.getEntriesByType("navigation")[0];
      return {
        prompt,
        typed,
        ready,
        created: probe.created,
        opened: probe.opened,
        firstMessage: probe.firstMessage,
        firstOutput: probe.firstOutput,
        domContentLoaded: nav ? nav.domContentLoadedEventEnd : null,
        load: nav ? nav.loadEventEnd : null,
      };
    })();
    // Reported through `interactive`; this only keeps an early failure from being unhandled.
    probe.interactive.catch(() => {});
  }
})();
