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

// The campaign monitor: counters from the live snapshot, and the funnel over time — messages
// queued so far → sent → delivered → read, and failures — drawn on the canvas against time.
// The campaign's history comes from the API's timeline (its whole life, in buckets); the live
// snapshots extend it second by second while the page is open.
(function campaignMonitor() {
  var box = document.querySelector("[data-counters]");
  if (!box) return;
  var canvas = document.getElementById("chart"), history = [], MAX_POINTS = 2000;
  var point = function (t, p) {
    return { t: t, queued: p.queued || 0, sent: p.sent || 0, delivered: p.delivered || 0, read: p.read || 0, failed: p.failed || 0 };
  };
  var set = function (k, v) {
    document.querySelectorAll('[data-k="' + k + '"]').forEach(function (el) {
      var s = String(v == null ? "" : v);
      if (el.textContent !== s) el.textContent = s;
    });
  };
  var draw = function () {
    if (!canvas || !canvas.getContext || history.length < 1) return;
    // One point so far: draw it as a level line until the next one arrives.
    var pts = history.length === 1 ? [history[0], point(history[0].t + 1, history[0])] : history;
    var ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, max = 1;
    var t0 = pts[0].t, span = Math.max(1, pts[pts.length - 1].t - t0);
    pts.forEach(function (p) { max = Math.max(max, p.queued, p.sent); });
    ctx.clearRect(0, 0, w, h);
    [["queued", "#8a8a8a"], ["sent", "#4a6fa5"], ["delivered", "#2e8b57"], ["read", "#7b4fa0"], ["failed", "#c0392b"]].forEach(function (s) {
      ctx.strokeStyle = s[1]; ctx.lineWidth = 2; ctx.beginPath();
      pts.forEach(function (p, i) {
        var x = ((p.t - t0) / span) * (w - 4) + 2, y = h - 2 - (p[s[0]] / max) * (h - 4);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  };
  fetch(window.location.pathname.replace(/\/$/, "") + "/timeline.json", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (tl) {
      if (!tl || !tl.points || tl.points.length === 0) return;
      var live = history;
      history = [point(Date.parse(tl.from), {})].concat(tl.points.map(function (p) { return point(Date.parse(p.at), p); }));
      var last = history[history.length - 1].t;
      live.forEach(function (p) { if (p.t > last) history.push(p); });
      draw();
    })
    .catch(function () { /* the live snapshots still draw from now on */ });
  document.addEventListener("herald:live", function (ev) {
    var s = ev.detail;
    ["status", "total", "queued", "sent", "delivered", "read", "failed", "skipped", "deferred", "delivery_rate", "read_rate", "remaining", "eta", "opt_outs", "at"]
      .forEach(function (k) { set(k, s[k]); });
    // A new campaign status changes the actions on offer: show the page again.
    if (box.dataset.status && s.status && s.status !== box.dataset.status) { window.location.reload(); return; }
    // The chart's queued line is every message queued so far (the snapshot's total).
    history.push(point(Date.now(), { queued: s.total, sent: s.sent, delivered: s.delivered, read: s.read, failed: s.failed }));
    if (history.length > MAX_POINTS) history.splice(1, 1);
    draw();
  });
})();

// Segment editor: a structured rule builder over the JSON rule. The tree of groups (all / any
// of) and conditions (a built-in field or an attribute, an operator, a value), each of which can
// be negated, is kept in step with the JSON textarea the form posts: editing either redraws the
// other. As the rule changes, the count and a sample come from the API's preview (debounced),
// and the API's errors — a JSON path into the rule such as rule.and[1].op — are shown at that
// part of the rule, with aria-invalid on the control.
(function segmentEditor() {
  var rule = document.querySelector("textarea[data-count]");
  if (!rule) return;
  var out = document.getElementById("rule-count"), box = document.getElementById("rule-builder");
  var timer = null, seq = 0, tree = null;
  var FIELDS = ["consent", "country", "topic", "locale", "timezone", "phone", "created_at", "last_inbound_at"];
  var OPS = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "starts_with", "exists", "not_exists", "between", "within_last"];
  var OP_TEXT = { eq: "is", ne: "is not", "in": "is one of", not_in: "is none of", gt: "is after / greater than", gte: "is at least",
    lt: "is before / less than", lte: "is at most", contains: "contains", starts_with: "starts with", exists: "is set",
    not_exists: "is not set", between: "is between", within_last: "is within the last" };

  var el = function (tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  };
  // Values: "Lima" stays text; 3, true and JSON lists or objects ({"$event": …}) are JSON.
  var parseValue = function (s) {
    var t = s.trim();
    if (/^(-?\d+(\.\d+)?|true|false)$/.test(t) || /^[\[{]/.test(t)) { try { return JSON.parse(t); } catch (e) { /* text */ } }
    return s;
  };
  var showValue = function (v) {
    if (v == null) return "";
    if (Array.isArray(v)) return v.map(function (x) { return typeof x === "string" ? x : JSON.stringify(x); }).join(", ");
    return typeof v === "string" ? v : JSON.stringify(v);
  };
  var fromJSON = function (j) {
    if (j && typeof j === "object" && !Array.isArray(j)) {
      if (j.not !== undefined) { var n = fromJSON(j.not); n.neg = !n.neg; return n; }
      if (Array.isArray(j.and) || Array.isArray(j.or)) {
        var mode = Array.isArray(j.and) ? "and" : "or";
        return { type: "group", mode: mode, kids: j[mode].map(fromJSON), neg: false };
      }
    }
    j = j || {};
    return { type: "leaf", attr: j.attr !== undefined, name: j.attr !== undefined ? j.attr : (j.field || "consent"),
      op: j.op || "eq", value: j.value, neg: false };
  };
  var toJSON = function (n) {
    var core;
    if (n.type === "group") {
      core = {}; core[n.mode] = n.kids.map(toJSON);
    } else {
      core = {}; core[n.attr ? "attr" : "field"] = n.name; core.op = n.op;
      if (n.op !== "exists" && n.op !== "not_exists") core.value = n.value === undefined ? "" : n.value;
    }
    return n.neg ? { not: core } : core;
  };
  var join = function (a, b) { return a ? a + "." + b : b; };

  var changed = function () {
    rule.value = JSON.stringify(toJSON(tree), null, 2);
    schedule();
  };
  var draw = function () {
    if (!box) return;
    var focus = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    box.replaceChildren(drawNode(tree, "", null, 0));
    if (focus) { var f = box.querySelector('[data-key="' + focus + '"]'); if (f) f.focus(); }
  };
  // drawNode draws n at path (its JSON path in the rule); parent is its group (null for the root).
  var drawNode = function (n, path, parent, idx) {
    var inner = n.neg ? join(path, "not") : path;
    var wrap = el(n.type === "group" ? "fieldset" : "div", { "class": "rule-" + n.type, "data-path": inner });
    var key = function (part) { return (inner || "root") + ":" + part; };
    var neg = el("label", { "class": "neg" });
    var nb = el("input", { type: "checkbox", "data-key": key("not") }); nb.checked = n.neg;
    nb.addEventListener("change", function () { n.neg = nb.checked; draw(); changed(); });
    neg.append(nb, document.createTextNode(" not"));
    if (n.type === "group") {
      var legend = el("legend");
      var mode = el("select", { "aria-label": "combine the conditions", "data-key": key("mode"), "data-part": "mode" });
      [["and", "all of"], ["or", "any of"]].forEach(function (m) { var o = el("option", { value: m[0] }, m[1]); o.selected = n.mode === m[0]; mode.append(o); });
      mode.addEventListener("change", function () { n.mode = mode.value; draw(); changed(); });
      legend.append(neg, document.createTextNode(" "), mode, document.createTextNode(" these"));
      wrap.append(legend);
      n.kids.forEach(function (k, i) { wrap.append(drawNode(k, join(inner, n.mode + "[" + i + "]"), n, i)); });
      var add = el("button", { type: "button", "class": "small", "data-key": key("add") }, "+ condition");
      add.addEventListener("click", function () { n.kids.push(fromJSON({ field: "consent", op: "eq", value: "OPT_IN" })); draw(); changed(); });
      var addg = el("button", { type: "button", "class": "small", "data-key": key("addgroup") }, "+ group");
      addg.addEventListener("click", function () { n.kids.push({ type: "group", mode: n.mode === "and" ? "or" : "and", kids: [fromJSON({})], neg: false }); draw(); changed(); });
      wrap.append(el("div", { "class": "rule-actions" }));
      wrap.lastChild.append(add, addg);
    } else {
      var what = el("select", { "aria-label": "field", "data-key": key("field"), "data-part": n.attr ? "attr" : "field" });
      FIELDS.forEach(function (f) { var o = el("option", { value: f }, f); o.selected = !n.attr && n.name === f; what.append(o); });
      var ao = el("option", { value: "" }, "attribute…"); ao.selected = n.attr; what.append(ao);
      what.addEventListener("change", function () {
        // Another field takes other values: start the value afresh.
        n.attr = what.value === ""; n.name = what.value; n.value = Array.isArray(n.value) ? [] : "";
        draw(); changed();
      });
      wrap.append(neg, what);
      if (n.attr) {
        var an = el("input", { "aria-label": "attribute name", placeholder: "attribute, e.g. city", size: "12", "data-key": key("attr"), "data-part": "attr", value: n.name || "" });
        an.addEventListener("input", function () { n.name = an.value; changed(); });
        wrap.append(an);
      }
      var op = el("select", { "aria-label": "operator", "data-key": key("op"), "data-part": "op" });
      OPS.forEach(function (o) { var e = el("option", { value: o }, OP_TEXT[o]); e.selected = n.op === o; op.append(e); });
      op.addEventListener("change", function () {
        var list = op.value === "in" || op.value === "not_in" || op.value === "between";
        if (list && !Array.isArray(n.value)) n.value = n.value == null || n.value === "" ? [] : [n.value];
        if (!list && Array.isArray(n.value)) n.value = n.value[0];
        n.op = op.value; draw(); changed();
      });
      wrap.append(op);
      if (n.op !== "exists" && n.op !== "not_exists") {
        var list = n.op === "in" || n.op === "not_in" || n.op === "between";
        var val = el("input", { "aria-label": list ? "values, separated by commas" : "value", size: "18", "data-key": key("value"), "data-part": "value",
          placeholder: n.op === "within_last" ? "7d" : (list ? "a, b" : "value"), value: showValue(n.value) });
        val.addEventListener("input", function () {
          n.value = list ? val.value.split(",").map(function (x) { return parseValue(x.trim()); }).filter(function (x) { return x !== ""; }) : parseValue(val.value);
          changed();
        });
        wrap.append(val);
      }
    }
    if (parent) {
      var rm = el("button", { type: "button", "class": "small remove", "aria-label": "remove this " + (n.type === "group" ? "group" : "condition"), "data-key": key("remove") }, "×");
      rm.addEventListener("click", function () {
        parent.kids.splice(idx, 1);
        if (parent.kids.length === 0) parent.kids.push(fromJSON({}));
        draw(); changed();
      });
      wrap.append(rm);
    }
    wrap.append(el("span", { "class": "rule-error", role: "alert" }));
    return wrap;
  };

  // Errors at the part of the rule they name: "rule.and[1].op" → the op control of and[1].
  var clearErrors = function () {
    if (!box) return;
    box.querySelectorAll("[aria-invalid]").forEach(function (e) { e.removeAttribute("aria-invalid"); });
    box.querySelectorAll(".rule-error").forEach(function (e) { e.textContent = ""; });
  };
  var markErrors = function (fields) {
    clearErrors();
    var placed = false;
    (fields || []).forEach(function (f) {
      if (!box || !f.field || !/^rule/.test(f.field)) return;
      var path = f.field.replace(/^rule\.?/, ""), part = "", m = /^(.*?)\.?(field|attr|op|value)(\[\d+\])?$/.exec(path);
      if (m) { path = m[1]; part = m[2]; }
      var node = null;
      box.querySelectorAll("[data-path]").forEach(function (e) { if (e.dataset.path === path) node = e; });
      if (!node) return;
      var ctl = part ? node.querySelector(':scope > [data-part="' + part + '"], :scope > legend > [data-part="' + part + '"]') : null;
      if (ctl) ctl.setAttribute("aria-invalid", "true");
      var msg = node.querySelector(":scope > .rule-error");
      if (msg) { msg.textContent = (msg.textContent ? msg.textContent + "; " : "") + (part ? part + ": " : "") + f.reason; placed = true; }
    });
    return placed;
  };

  var run = function () {
    var mine = ++seq, body = new URLSearchParams();
    body.set("rule", rule.value);
    fetch(rule.dataset.count, { method: "POST", credentials: "same-origin", body: body })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (mine !== seq) return;
        out.classList.toggle("bad", !!d.error);
        rule.setAttribute("aria-invalid", d.error ? "true" : "false");
        markErrors(d.fields);
        out.textContent = d.error ? d.error
          : d.count + " user" + (d.count === 1 ? "" : "s") + " match" + (d.count === 1 ? "es" : "") +
            (d.sample && d.sample.length ? " — e.g. " + d.sample.join(", ") : "");
      })
      .catch(function () { out.textContent = "Could not count right now."; });
  };
  var schedule = function () { clearTimeout(timer); timer = setTimeout(run, 300); };
  var load = function () {
    try { tree = fromJSON(JSON.parse(rule.value)); } catch (e) { return false; }
    if (tree.type !== "group") tree = { type: "group", mode: "and", kids: [tree], neg: false };
    draw();
    return true;
  };
  rule.addEventListener("input", function () { load(); schedule(); });
  if (box) {
    box.hidden = false;
    if (!load()) { tree = { type: "group", mode: "and", kids: [fromJSON({})], neg: false }; draw(); }
    // The errors of a refused save, from the server-rendered list.
    var saved = [];
    document.querySelectorAll("[data-error-field]").forEach(function (e) { saved.push({ field: e.dataset.errorField, reason: e.dataset.errorReason }); });
    markErrors(saved);
  }
  run();
})();

// Template editor: as the operator types, the draft (every locale on the form) is rendered by
// the API for the chosen user or locale (debounced), with the rendered text, its length, and
// the body's placeholders shown with the ones this user has no value for marked. Problems are
// shown at the locale's body they are about (template.variants.es.body).
(function templateEditor() {
  var form = document.getElementById("template-form");
  if (!form || !form.dataset.draft) return;
  var meta = document.getElementById("draft-meta"), text = document.getElementById("draft-text"),
    missing = document.getElementById("draft-missing"), source = document.getElementById("draft-source"),
    phone = document.getElementById("preview_phone"), locale = document.getElementById("preview_locale");
  var timer = null, seq = 0;
  var fieldsets = function () { return Array.prototype.slice.call(form.querySelectorAll("[data-variant]")); };
  var localeOf = function (fs) { return fs.querySelector("input[name=locale]").value.trim(); };
  var clear = function () {
    form.querySelectorAll("[aria-invalid]").forEach(function (e) { e.removeAttribute("aria-invalid"); });
    form.querySelectorAll(".field-error").forEach(function (e) { e.textContent = ""; });
    phone.removeAttribute("aria-invalid");
  };
  // showSource draws the body of the rendered locale with each placeholder as a code element,
  // marked when the user has no value for it.
  var showSource = function (loc, miss) {
    var fs = fieldsets().filter(function (f) { return localeOf(f) === loc; })[0] || fieldsets()[0];
    var body = fs ? fs.querySelector("textarea").value : "", re = /\{([^{}|]+)(\|[^{}]*)?\}/g, at = 0, m, nodes = [];
    while ((m = re.exec(body)) !== null) {
      if (m.index > at) nodes.push(document.createTextNode(body.slice(at, m.index)));
      var isMissing = miss.indexOf(m[1].trim()) >= 0, e = document.createElement(isMissing ? "mark" : "code");
      e.textContent = m[0];
      if (isMissing) e.title = "no value for this user";
      nodes.push(e);
      at = re.lastIndex;
    }
    if (at < body.length) nodes.push(document.createTextNode(body.slice(at)));
    source.replaceChildren.apply(source, nodes);
  };
  var run = function () {
    var mine = ++seq, body = new URLSearchParams(new FormData(form));
    body.delete("token");
    body.set("preview_phone", phone.value);
    body.set("preview_locale", locale.value);
    fetch(form.dataset.draft, { method: "POST", credentials: "same-origin", body: body })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (mine !== seq) return;
        clear();
        if (d.error) {
          meta.textContent = d.error;
          meta.classList.add("bad");
          text.hidden = true; missing.hidden = true;
          (d.fields || []).forEach(function (f) {
            var m = /^template\.variants\.([^.]+)\.(body|content_sid)/.exec(f.field || "");
            if (m) {
              fieldsets().forEach(function (fs) {
                if (localeOf(fs) !== m[1]) return;
                var ctl = fs.querySelector(m[2] === "body" ? "textarea" : "input[name=content_sid]");
                ctl.setAttribute("aria-invalid", "true");
                var out = fs.querySelector(".field-error");
                out.textContent = (out.textContent ? out.textContent + "; " : "") + f.reason;
              });
            } else if (f.field === "phone") {
              phone.setAttribute("aria-invalid", "true");
              meta.textContent = "Preview for " + phone.value + ": " + f.reason;
            } else {
              meta.textContent += " — " + f.field.replace(/^template\./, "") + ": " + f.reason;
            }
          });
          return;
        }
        meta.classList.remove("bad");
        meta.textContent = "Rendered in " + (d.locale || "the default locale") + " · " + d.chars + " characters" +
          (d.too_long ? " — too long for WhatsApp" : "") + (d.content_sid ? " · sent as approved content " + d.content_sid : "");
        text.hidden = false;
        text.textContent = d.text;
        var miss = d.missing || [];
        missing.hidden = miss.length === 0;
        missing.textContent = miss.length ? "Missing for this user: " + miss.join(", ") +
          " — they would be skipped unless these placeholders get defaults ({name|default})." : "";
        showSource(d.locale, miss);
      })
      .catch(function () { meta.textContent = "Could not render the preview right now."; });
  };
  var schedule = function () { clearTimeout(timer); timer = setTimeout(run, 300); };
  form.addEventListener("input", schedule);
  phone.addEventListener("input", schedule);
  locale.addEventListener("input", schedule);
  var pf = document.getElementById("draft-preview");
  if (pf) pf.addEventListener("submit", function (ev) { ev.preventDefault(); run(); });
  // Another locale: a copy of the last fieldset, emptied.
  var add = document.getElementById("add-variant");
  if (add) {
    add.hidden = false;
    add.addEventListener("click", function () {
      var list = fieldsets(), last = list[list.length - 1], copy = last.cloneNode(true), n = list.length + 1;
      copy.querySelector("legend").textContent = "Locale " + n + " (optional)";
      copy.querySelectorAll("[id]").forEach(function (e) { e.id = e.id.replace(/\d+$/, String(n)); });
      copy.querySelectorAll("label[for]").forEach(function (e) { e.htmlFor = e.htmlFor.replace(/\d+$/, String(n)); });
      copy.querySelectorAll("input, textarea").forEach(function (e) { e.value = ""; e.removeAttribute("required"); e.removeAttribute("aria-invalid"); });
      copy.querySelector(".field-error").textContent = "";
      last.after(copy);
      copy.querySelector("input[name=locale]").focus();
    });
  }
  run();
})();
