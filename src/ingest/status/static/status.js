// sluice status page: reloads the page every 10 seconds, unless a form on it is being filled
// in. The page works without it (the "refresh" link does the same by hand). Served from
// /ui/static/status.js: the Content-Security-Policy runs no inline script.
"use strict";
(function () {
  var EVERY_MS = 10000;
  document.documentElement.setAttribute("data-refresh", "on");
  function editing() {
    var active = document.activeElement;
    if (active && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName)) {
      return true;
    }
    var fields = document.querySelectorAll("form.edit input[type=text], form.edit textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) {
        return true;
      }
    }
    return false;
  }
  function tick() {
    if (editing()) {
      setTimeout(tick, EVERY_MS);
    } else {
      location.reload();
    }
  }
  setTimeout(tick, EVERY_MS);
})();
