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

// Live pages: <main data-live="/live/…"> names a Server-Sent Events stream that sends the
// page's snapshot (at most once a second, only when it changed). Each snapshot updates the
// counters marked data-k, and the regions marked data-region are swapped for the same regions
// of the page fetched again — parsed with DOMParser (scripts in it never run), never innerHTML.
// A region holding the keyboard focus is left alone so tabbing is never pulled away.
(function live() {
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource) return;
  var busy = false, again = false;
  var swap = function () {
    if (!document.querySelector("[data-region]")) return;
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-region]").forEach(function (el) {
          if (!el.id || el.contains(document.activeElement)) return;
          var fresh = doc.getElementById(el.id);
          if (fresh) el.replaceWith(document.adoptNode(fresh));
        });
      })
      .catch(function () { /* the next change tries again */ })
      .finally(function () { busy = false; if (again) { again = false; swap(); } });
  };
  var src = new EventSource(main.dataset.live), last = null;
  src.onmessage = function (ev) {
    var d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    document.dispatchEvent(new CustomEvent("herald:live", { detail: d }));
    // The snapshot's clock ("at") alone is no reason to fetch the page again.
    var key = JSON.stringify(d, function (k, v) { return k === "at" ? undefined : v; });
    if (key !== last) { last = key; swap(); }
  };
  src.addEventListener("end", function () { src.close(); });
  window.addEventListener("pagehide", function () { src.close(); });
})();

// The campaign monitor: counters from the live snapshot, and the funnel over time —
// queued → sent → delivered → read, and failures — drawn on the canvas.
(function campaignMonitor() {
  var box = document.querySelector("[data-counters]");
  if (!box) return;
  var canvas = document.getElementById("chart"), history = [];
  var set = function (k, v) {
    document.querySelectorAll('[data-k="' + k + '"]').forEach(function (el) {
      var s = String(v == null ? "" : v);
      if (el.textContent !== s) el.textContent = s;
    });
  };
  var draw = function () {
    if (!canvas || !canvas.getContext || history.length < 2) return;
    var ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, max = 1;
    history.forEach(function (p) { max = Math.max(max, p.total, p.queued, p.sent); });
    ctx.clearRect(0, 0, w, h);
    [["queued", "#8a8a8a"], ["sent", "#4a6fa5"], ["delivered", "#2e8b57"], ["read", "#7b4fa0"], ["failed", "#c0392b"]].forEach(function (s) {
      ctx.strokeStyle = s[1]; ctx.lineWidth = 2; ctx.beginPath();
      history.forEach(function (p, i) {
        var x = (i / (history.length - 1)) * (w - 4) + 2, y = h - 2 - ((p[s[0]] || 0) / max) * (h - 4);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  };
  document.addEventListener("herald:live", function (ev) {
    var s = ev.detail;
    ["status", "total", "queued", "sent", "delivered", "read", "failed", "skipped", "deferred", "delivery_rate", "read_rate", "remaining", "eta", "opt_outs", "at"]
      .forEach(function (k) { set(k, s[k]); });
    // A new campaign status changes the actions on offer: show the page again.
    if (box.dataset.status && s.status && s.status !== box.dataset.status) { window.location.reload(); return; }
    history.push(s); if (history.length > 600) history.shift();
    draw();
  });
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
