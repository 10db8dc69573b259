// Herald UI: the little script the pages need. No framework, no inline script (the CSP forbids
// it). Everything it writes into the page goes through textContent, never innerHTML.
"use strict";

// The login form sends the browser's time zone, so times show in the operator's zone.
(function zone() {
  var z = document.getElementById("zone");
  if (!z) return;
  try { z.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* stays UTC */ }
})();

// Forms with data-confirm ask before they go.
document.addEventListener("submit", function (ev) {
  var f = ev.target;
  if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) ev.preventDefault();
});

// Live campaign counters: poll the stats every 1.5 s while the page is visible, and draw the
// funnel over time on the canvas.
(function poll() {
  var box = document.querySelector("[data-poll]");
  if (!box) return;
  var url = box.dataset.poll, canvas = document.getElementById("chart"), history = [];
  var set = function (k, v) {
    document.querySelectorAll('[data-k="' + k + '"]').forEach(function (el) {
      var s = String(v == null ? "" : v);
      if (el.textContent !== s) el.textContent = s;
    });
  };
  var draw = function () {
    if (!canvas || !canvas.getContext || history.length < 2) return;
    var ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, max = 1;
    history.forEach(function (p) { max = Math.max(max, p.total, p.sent); });
    ctx.clearRect(0, 0, w, h);
    [["sent", "#4a6fa5"], ["delivered", "#2e8b57"], ["read", "#7b4fa0"], ["failed", "#c0392b"]].forEach(function (s) {
      ctx.strokeStyle = s[1]; ctx.lineWidth = 2; ctx.beginPath();
      history.forEach(function (p, i) {
        var x = (i / (history.length - 1)) * (w - 4) + 2, y = h - 2 - (p[s[0]] / max) * (h - 4);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  };
  var tick = function () {
    if (document.hidden) { setTimeout(tick, 1500); return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s) {
          ["status", "total", "sent", "delivered", "read", "failed", "skipped", "delivery_rate", "read_rate", "remaining", "eta", "opt_outs", "at"]
            .forEach(function (k) { set(k, s[k]); });
          set("queued", (s.by_state && s.by_state.queued) || 0);
          // A new campaign status changes the actions on offer: show the page again.
          if (box.dataset.status && s.status && s.status !== box.dataset.status) { window.location.reload(); return; }
          history.push(s); if (history.length > 240) history.shift();
          draw();
        }
      })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { setTimeout(tick, 1500); });
  };
  tick();
})();

// Segment editor: count the users the rule matches as the operator types.
(function segmentCount() {
  var rule = document.querySelector("textarea[data-count]");
  if (!rule) return;
  var out = document.getElementById("rule-count"), timer = null, seq = 0;
  var run = function () {
    var mine = ++seq, body = new URLSearchParams();
    body.set("rule", rule.value);
    fetch(rule.dataset.count, { method: "POST", credentials: "same-origin", body: body })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (mine !== seq) return;
        out.classList.toggle("bad", !!d.error);
        rule.setAttribute("aria-invalid", d.error ? "true" : "false");
        out.textContent = d.error ? d.error
          : d.count + " user" + (d.count === 1 ? "" : "s") + " match" + (d.count === 1 ? "es" : "") +
            (d.sample && d.sample.length ? " — e.g. " + d.sample.join(", ") : "");
      })
      .catch(function () { out.textContent = "Could not count right now."; });
  };
  rule.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 300); });
  run();
})();
