// Small behaviours every page shares. No framework: htmx does the partial updates.
(function () {
  "use strict";

  // -- times: relative text ("3 min ago"), exact local time with zone on hover ------------------------------
  var exact = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short",
  });
  var relative = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" }) : null;
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600],
               ["minute", 60], ["second", 1]];

  function describe(seconds) {
    var abs = Math.abs(seconds);
    if (abs < 5) { return "just now"; }
    for (var i = 0; i < UNITS.length; i++) {
      if (abs >= UNITS[i][1] || UNITS[i][0] === "second") {
        var value = Math.round(seconds / UNITS[i][1]);
        return relative ? relative.format(value, UNITS[i][0]) : value + " " + UNITS[i][0] + "(s)";
      }
    }
    return "";
  }

  function renderTimes(root) {
    var now = Date.now() / 1000;
    (root || document).querySelectorAll("time.ts[data-epoch]").forEach(function (el) {
      var epoch = parseFloat(el.dataset.epoch);
      if (isNaN(epoch)) { return; }
      el.textContent = describe(epoch - now);
      el.title = exact.format(new Date(epoch * 1000));
    });
  }

  // -- theme toggle: auto -> light -> dark -> auto ----------------------------------------------------
  var NEXT = { auto: "light", light: "dark", dark: "auto" };
  function setupThemeToggle() {
    var button = document.getElementById("theme-toggle");
    if (!button) { return; }
    var show = function () {
      var theme = document.documentElement.dataset.theme || "auto";
      button.textContent = "Theme: " + theme;
      button.setAttribute("aria-label", "Colour theme: " + theme + " (click to change)");
    };
    button.addEventListener("click", function () {
      var next = NEXT[document.documentElement.dataset.theme] || "light";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("webui-theme", next);
      show();
    });
    show();
  }

  // -- copy buttons: <button class="copy" data-copy-target="#id"> --------------------------------------
  function setupCopyButtons(root) {
    (root || document).querySelectorAll("button.copy[data-copy-target]").forEach(function (button) {
      if (button.dataset.ready) { return; }
      button.dataset.ready = "1";
      button.addEventListener("click", function () {
        var target = document.querySelector(button.dataset.copyTarget);
        if (!target || !navigator.clipboard) { return; }
        navigator.clipboard.writeText(target.textContent).then(function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1200);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    renderTimes();
    setupThemeToggle();
    setupCopyButtons();
    setInterval(renderTimes, 15000);
  });
  // Fragments swapped in by htmx get the same treatment.
  document.addEventListener("htmx:load", function (event) {
    renderTimes(event.target);
    setupCopyButtons(event.target);
  });
})();
