// Live updates (contract in webui/live.py): one WebSocket to /ws/live; each changed topic becomes a DOM event
// `live:<topic>` on document.body, so any element can refresh itself with hx-trigger="live:tasks from:body".
// Only pages with [data-live] (or <body data-live>) open the socket. While it is down, every topic is
// dispatched every 10 s instead; the top-bar button pauses all of it (remembered in localStorage).
(function () {
  "use strict";

  var TOPICS = ["tasks", "events", "workers", "overview", "queues"];
  var FALLBACK_POLL_MS = 10000;
  var SILENCE_MS = 60000;  // the server pings every 25 s: this long without a word means the socket is dead
  var PAUSE_KEY = "webui-live-paused";

  var socket = null;
  var state = "connecting";  // "live" | "reconnecting" | (shown as "paused" when paused)
  var attempts = 0;
  var everConnected = false;
  var lastMessageAt = 0;
  var reconnectTimer = null;
  var closeReason = "";

  function paused() { return localStorage.getItem(PAUSE_KEY) === "1"; }

  function dispatch(topics) {
    if (paused()) { return; }
    topics.forEach(function (topic) {
      document.body.dispatchEvent(new CustomEvent("live:" + topic, { detail: { topic: topic } }));
    });
  }

  function show() {
    var button = document.getElementById("live-toggle");
    if (!button) { return; }
    var shown = paused() ? "paused" : state;
    var label = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", paused: "Paused" }[shown];
    button.hidden = false;
    button.dataset.state = shown;
    button.querySelector(".live-label").textContent = label;
    button.setAttribute("aria-pressed", paused() ? "true" : "false");
    button.title = paused() ? "Live updates are paused: click to resume"
      : shown === "live" ? "This page updates itself: click to pause"
      : "Live updates are not connected" + (closeReason ? " (" + closeReason + ")" : "")
        + "; the page refreshes every 10 s meanwhile. Click to pause.";
  }

  function socketUrl() {
    // Flask builds a WebSocket route's URL as ws://<host>/<prefix>/ws/live: keep its path (the prefix), and
    // take the host and scheme from the page, which the browser knows better behind a proxy.
    var path = new URL(document.body.dataset.liveUrl, location.href).pathname;
    // The store's state when the page was rendered: the server first tells what changed since (the first
    // connection only; a reconnect refreshes everything anyway).
    var mark = document.body.dataset.liveMark;
    var query = mark && !everConnected ? "?since=" + encodeURIComponent(mark) : "";
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path + query;
  }

  function connect() {
    reconnectTimer = null;
    try {
      socket = new WebSocket(socketUrl());
    } catch (error) {
      scheduleReconnect();
      return;
    }
    socket.addEventListener("message", function (event) {
      lastMessageAt = Date.now();
      var message;
      try { message = JSON.parse(event.data); } catch (error) { return; }
      if (message.type === "hello") {
        // No catching up here: the server's first message tells what changed since the page's mark, or
        // every topic after a reconnect (no mark sent), so nothing that changed meanwhile is missed.
        everConnected = true;
        attempts = 0;
        closeReason = "";
        state = "live";
        show();
      } else if (message.type === "changed" && Array.isArray(message.topics)) {
        dispatch(message.topics);
      }
    });
    socket.addEventListener("close", function (event) {
      socket = null;
      closeReason = event.reason || "";
      state = "reconnecting";
      show();
      // 1013: this server process already serves as many sockets as it may; try again much later.
      scheduleReconnect(event.code === 1013 ? 60000 : 0);
    });
  }

  function scheduleReconnect(atLeast) {
    if (reconnectTimer) { return; }
    attempts += 1;
    var backoff = Math.min(30000, 1000 * Math.pow(2, Math.min(attempts - 1, 5)));
    var delay = Math.max(atLeast || 0, backoff) * (0.75 + Math.random() * 0.5);
    reconnectTimer = setTimeout(connect, delay);
  }

  function watch() {
    // Nothing freezes silently: without a live socket, refresh every topic on a slow clock.
    if (state !== "live") {
      dispatch(TOPICS);
    } else if (Date.now() - lastMessageAt > SILENCE_MS && socket) {
      socket.close();
    }
  }

  function setupToggle() {
    var button = document.getElementById("live-toggle");
    if (!button) { return; }
    button.addEventListener("click", function () {
      if (paused()) {
        localStorage.removeItem(PAUSE_KEY);
        dispatch(TOPICS);  // show what changed while paused
      } else {
        localStorage.setItem(PAUSE_KEY, "1");
      }
      show();
      document.body.dispatchEvent(new CustomEvent("live:paused", { detail: { paused: paused() } }));
    });
    window.addEventListener("storage", function (event) {
      if (event.key === PAUSE_KEY) { show(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var wanted = document.body.hasAttribute("data-live") || document.querySelector("[data-live]");
    if (!wanted) { return; }
    setupToggle();
    if (document.body.dataset.liveUrl && typeof WebSocket === "function") {
      connect();
    } else {
      state = "reconnecting";  // no socket to be had: poll
    }
    show();
    setInterval(watch, FALLBACK_POLL_MS);
  });

  window.webuiLive = { paused: paused, topics: TOPICS };
})();
