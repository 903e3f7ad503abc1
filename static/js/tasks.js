// The tasks filter form: times typed without a zone are the viewer's, and a preset range replaces from/to.
(function () {
  "use strict";

  function setup(root) {
    var form = (root || document).querySelector("#task-filters");
    if (!form || form.dataset.ready) { return; }
    form.dataset.ready = "1";
    var offset = String(-new Date().getTimezoneOffset());
    form.querySelectorAll("input.tz-offset").forEach(function (input) { input.value = offset; });
    var range = form.querySelector("select[name=range]");
    var times = form.querySelectorAll("input[name=from], input[name=to]");
    if (range) {
      range.addEventListener("change", function () {
        if (range.value) { times.forEach(function (input) { input.value = ""; }); }
      });
    }
    times.forEach(function (input) {
      input.addEventListener("change", function () { if (input.value && range) { range.value = ""; } });
    });
    // Empty fields stay out of the URL, so a shared link says only what was chosen.
    form.addEventListener("htmx:configRequest", function (event) {
      var params = event.detail.parameters;
      if (params instanceof FormData) {
        Array.from(params.keys()).forEach(function (key) {
          if (params.getAll(key).every(function (v) { return v === ""; })) { params.delete(key); }
        });
      }
    });
    form.addEventListener("submit", function () {
      form.querySelectorAll("input, select").forEach(function (el) { if (el.name && el.value === "") { el.disabled = true; } });
      setTimeout(function () { form.querySelectorAll("[disabled]").forEach(function (el) { el.disabled = false; }); }, 0);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { setup(document); });
  document.addEventListener("htmx:load", function (event) { setup(event.target); });
})();
