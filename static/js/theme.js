// Applied in <head> before the page paints, so a dark-theme user never sees a white flash.
// The choice ("light", "dark" or "auto" = follow the system) lives in localStorage.
(function () {
  var choice = localStorage.getItem("webui-theme") || "auto";
  document.documentElement.dataset.theme = choice;
})();
