// A terminal page's socket, opened as soon as the page starts loading, before the app's
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
(() => {
  try {
    const saved = JSON.parse(localStorage.getItem("opsdeck.earlySocket") ?? "null");
    if (!saved || saved.page !== location.href || typeof saved.url !== "string") return;
    const socket = new WebSocket(saved.url);
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
})();
