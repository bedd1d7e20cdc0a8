// ccengine console: re-counts the durations on the page once a second (waits, agent states).
// No requests: the server pushes every change over server-sent events (htmx SSE extension).
(function () {
  "use strict";
  var skew = 0;  // server clock minus this browser's clock, in seconds
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function text(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }
  function tick() {
    var now = Date.now() / 1000 + skew;
    var spans = document.querySelectorAll("span.since[data-since]");
    for (var i = 0; i < spans.length; i++) {
      var since = parseFloat(spans[i].getAttribute("data-since"));
      if (isFinite(since)) { spans[i].textContent = text(now - since); }
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var serverNow = parseFloat(document.body.getAttribute("data-now"));
    if (isFinite(serverNow)) { skew = serverNow - Date.now() / 1000; }
    window.setInterval(tick, 1000);
  });
})();
