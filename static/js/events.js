// The events page: on live:events, prepend the rows newer than the newest shown (keeping the reader's place),
// or, while this page is paused, count how many wait. Pages of older events (?before=…) do not stream.
(function () {
  "use strict";

  var MAX_ROWS = 500;  // rows kept on the page; older ones stay one click away ("Older events")

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("events");
    if (!table || table.dataset.stream !== "on") { return; }
    var tbody = document.getElementById("event-rows");
    var button = document.getElementById("events-pause");
    var waiting = document.getElementById("events-waiting");
    var paused = false;
    var busy = false;
    var again = false;

    function newestKey() {
      var row = tbody.querySelector("tr[data-key]");
      return row ? row.dataset.key : "";
    }

    function withAfter(base) {
      var url = new URL(base, location.href);
      var key = newestKey();
      if (key) { url.searchParams.set("after", key); }
      return url.toString();
    }

    function insert(html) {
      var template = document.createElement("template");
      template.innerHTML = html;
      var rows = Array.prototype.slice.call(template.content.querySelectorAll("tr"));
      if (!rows.length) { return; }
      var scrolled = window.scrollY > 0;
      var height = document.documentElement.scrollHeight;
      tbody.insertBefore(template.content, tbody.firstChild);
      // Keep the reader's place: rows added above push the page down by exactly the height they take.
      if (scrolled) { window.scrollBy(0, document.documentElement.scrollHeight - height); }
      rows.forEach(function (row) {
        row.classList.add("event-fresh");
        // What htmx announces for swapped content: webui.js renders the rows' times on it.
        row.dispatchEvent(new CustomEvent("htmx:load", { bubbles: true, detail: { elt: row } }));
      });
      document.getElementById("events-empty").hidden = true;
      trim();
    }

    function trim() {
      var rows = tbody.querySelectorAll("tr");
      if (rows.length <= MAX_ROWS) { return; }
      for (var i = rows.length - 1; i >= MAX_ROWS; i--) { rows[i].remove(); }
      var keyed = tbody.querySelectorAll("tr[data-key]");
      var last = keyed[keyed.length - 1];
      if (!last) { return; }
      var older = document.getElementById("events-older");
      var url = new URL(older.dataset.baseUrl, location.href);
      url.searchParams.set("before", last.dataset.key);
      older.href = url.toString();
      older.hidden = false;
    }

    function fetchNewer() {
      return fetch(withAfter(table.dataset.newerUrl), { headers: { "HX-Request": "true" } })
        .then(function (response) { return response.ok ? response.text() : ""; })
        .then(insert);
    }

    function countWaiting() {
      return fetch(withAfter(table.dataset.countUrl))
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) {
          if (!answer || !paused) { return; }
          var n = answer.count;
          waiting.textContent = n === 0 ? "No new events yet"
            : (answer.capped ? n + "+" : n) + " new event" + (n === 1 ? "" : "s") + " waiting";
        });
    }

    function refresh() {
      if (busy) { again = true; return; }  // one request at a time; a change meanwhile asks once more
      busy = true;
      (paused ? countWaiting() : fetchNewer()).catch(function () {}).then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
    }

    button.addEventListener("click", function () {
      paused = !paused;
      button.textContent = paused ? "Resume" : "Pause";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      table.classList.toggle("events-paused", paused);
      if (paused) { waiting.textContent = "No new events yet"; }
      waiting.hidden = !paused;
      refresh();
    });
    document.body.addEventListener("live:events", refresh);
  });
})();
