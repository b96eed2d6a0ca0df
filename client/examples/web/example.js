// The example page of @opsdeck/chat: connect to a room, show its messages, who is in it
// and the connection's state, and send. See docs/CHAT-CLIENT.md.
//
// The token: a page on another origin than the relay's has no relay cookie, so it passes a
// JWT the relay accepts. In a real app the page gets one from its own backend, e.g. with
// djangorestframework-simplejwt and the relay's `auth.jwt_secret` set to the same key:
//   const { access } = await (await fetch("/api/token/", { method: "POST", ... })).json();
// Here it is pasted into the form.
import init, { OpsdeckChat } from "../opsdeck_chat.js";

const $ = (id) => document.getElementById(id);
let chat = null;

await init();
$("connect").disabled = false;

$("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  chat?.close();
  for (const id of ["messages", "outbox", "presence", "state-log"]) $(id).replaceChildren();
  const token = $("token").value.trim();
  chat = OpsdeckChat.connect($("room-url").value.trim(), token ? { token } : {});
  chat.on("state", showState);
  chat.on("message", (m) => {
    const li = document.createElement("li");
    li.dataset.id = m.id ?? "";
    li.dataset.user = m.username;
    const who = document.createElement("b");
    who.textContent = `${m.username}: `;
    li.append(who, m.text);
    $("messages").append(li);
  });
  chat.on("presence", (users) => {
    $("presence").replaceChildren(
      ...users.map((u) => {
        const li = document.createElement("li");
        li.textContent = u.username;
        return li;
      }),
    );
  });
  chat.on("status", (s) => notice(s.message, s.kind));
  chat.on("gap", (g) => notice(g.message, "gap"));
  chat.on("error", (e) => notice(e.needsLogin ? `${e.message} (get a new token)` : e.message, e.kind));
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("message").value;
  if (!chat || !text.trim()) return;
  $("message").value = "";
  const li = document.createElement("li");
  li.dataset.state = "pending";
  li.textContent = text;
  $("outbox").append(li);
  try {
    // Resolves once the relay stored it; while disconnected it waits and goes on reconnect.
    li.dataset.id = await chat.send(text);
    li.dataset.state = "acked";
  } catch (error) {
    li.dataset.state = "failed";
    li.title = error.message;
  }
});

function showState(s) {
  const indicator = $("conn-state");
  indicator.dataset.state = s.state;
  indicator.textContent =
    s.state === "reconnecting"
      ? `reconnecting in ${(s.delayMs / 1000).toFixed(1)} s`
      : s.state === "closed"
        ? `closed: ${s.error.message}`
        : s.state;
  if (s.state === "live") notice("");
  const entry = document.createElement("li");
  entry.dataset.state = s.state;
  entry.textContent = indicator.textContent;
  $("state-log").append(entry);
}

function notice(text, kind = "") {
  const p = $("notice");
  p.textContent = text;
  p.dataset.kind = kind;
  p.hidden = !text;
}
