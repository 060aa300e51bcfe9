// Pause toggle for the live view and confirmation of destructive forms. No inline scripts (CSP).
(function () {
  "use strict";
  var KEY = "khaacho.paused";

  function paused() {
    return window.sessionStorage.getItem(KEY) === "1";
  }

  function render() {
    var button = document.getElementById("pause-toggle");
    var note = document.getElementById("paused-note");
    var on = paused();
    if (button) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "Resume updates" : "Pause updates";
    }
    if (note) {
      note.hidden = !on;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("pause-toggle");
    if (button) {
      button.addEventListener("click", function () {
        window.sessionStorage.setItem(KEY, paused() ? "0" : "1");
        render();
      });
    }
    render();
  });

  // Back on a hidden tab: refresh at once instead of waiting for the next poll.
  document.addEventListener("visibilitychange", function () {
    var poller = document.getElementById("live");
    if (!document.hidden && poller && !paused() && window.htmx) {
      window.htmx.trigger(poller, "live:refresh");
    }
  });

  // The page's one poll (all live sections at once) is skipped while paused or while the tab is hidden.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute("data-poll") && (paused() || document.hidden)) {
      event.preventDefault();
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });
})();
