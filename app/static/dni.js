/*! calltrack dni.js: shows each visitor their own tracking number in place of the
 * business number. Configure on the tag (https://github.com/calltrack, README):
 * <script async src="https://calltrack.example/dni.js?v=..." data-pool="default"
 *   data-numbers="+12125550100"></script>
 * data-endpoint (default: where this file came from), data-pool, data-numbers (comma
 * separated, any format), data-consent="required", data-heartbeat (seconds, default 60),
 * data-timeout (seconds, default 5). */
(function (w, d) {
  "use strict";
  var queued = w.CallTrack;
  if (queued && queued.version) return; // the tag is on the page twice

  var VERSION = "1";
  var IDLE_MS = 30 * 60 * 1000; // a visit ends after 30 idle minutes, as in web analytics
  var PARAMS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "gclid", "gbraid", "wbraid", "msclkid", "fbclid"];
  // A run of digits with the separators numbers are written with; checked by digits after.
  var CANDIDATE = /\+?\(?\d[\d\s().\-\/\u00a0\u2010-\u2015]{5,24}\d/g;
  var SKIP = { SCRIPT: 1, STYLE: 1, NOSCRIPT: 1, TEXTAREA: 1, TEMPLATE: 1, OPTION: 1 };

  var tag = d.currentScript;
  function opt(name, fallback) {
    var v = tag && tag.getAttribute("data-" + name);
    return v == null || v === "" ? fallback : v;
  }
  function digitsOf(s) { return String(s).replace(/\D/g, ""); }

  var endpoint = opt("endpoint", tag && tag.src ? new URL(tag.src, w.location.href).origin : "");
  endpoint = endpoint.replace(/\/+$/, "");
  var pool = opt("pool", "");
  var business = opt("numbers", "").split(",").map(digitsOf).filter(function (n) {
    return n.length >= 7;
  });
  var needsConsent = opt("consent", "") === "required";
  var heartbeatMs = Math.max(5, Number(opt("heartbeat", 60)) || 60) * 1000;
  var timeoutMs = Math.max(1, Number(opt("timeout", 5)) || 5) * 1000;
  var storeKey = "calltrack:" + (pool || "default");

  var consented = !needsConsent;
  var state = {}; // sid, num (digits), exp (ms), seen (ms), touch
  var shown = null; // digits of the tracking number shown, or null for the originals
  var timer = null;
  var failures = 0;
  var inFlight = false;
  var origText = new WeakMap(); // node -> the page's own text
  var ourText = new WeakMap(); // node -> what we last wrote into it
  var origHref = new WeakMap();
  var ourHref = new WeakMap();

  function load() {
    try { return JSON.parse(w.localStorage.getItem(storeKey)) || {}; } catch (e) { return {}; }
  }
  function save() {
    if (!consented || !state.sid) return;
    state.seen = Date.now();
    try { w.localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }
  function forget() {
    state = {};
    try { w.localStorage.removeItem(storeKey); } catch (e) { /* nothing stored */ }
  }

  // --- matching and formatting ---------------------------------------------------------
  // How many trailing digits of `found` are the business number: all of them, or all but a
  // trunk "0" or a "00" international prefix; 0 when it is another number.
  function matched(found) {
    for (var i = 0; i < business.length; i++) {
      var b = business[i];
      if (found === b) return found.length;
      var extra = b.length - found.length; // a country code the page left out
      if (extra > 0 && extra <= 3 && found.length >= 7 && b.slice(extra) === found) {
        return found.length;
      }
      // "+44 (0)20 7946 0000": the trunk 0 written after the country code.
      for (var cc = 1; cc <= 3 && extra === -1; cc++) {
        if (found === b.slice(0, cc) + "0" + b.slice(cc)) return b.length - cc;
      }
      if (found.charAt(0) === "0") {
        var rest = found.replace(/^00?/, "");
        extra = b.length - rest.length;
        if (rest.length >= 7 && extra >= 0 && extra <= 3 && b.slice(extra) === rest) {
          return rest.length;
        }
      }
    }
    return 0;
  }

  // Writes the tracking number into the place's own format, digit for digit from the right.
  function reformat(text, count, number) {
    if (number.length < count) return "+" + number;
    var out = "", taken = 0;
    for (var i = text.length - 1; i >= 0; i--) {
      var ch = text.charAt(i);
      if (ch >= "0" && ch <= "9" && taken < count) {
        ch = number.charAt(number.length - 1 - taken);
        taken++;
      }
      out = ch + out;
    }
    return out;
  }

  function swapped(text, number) {
    return text.replace(CANDIDATE, function (found) {
      var count = matched(digitsOf(found));
      return count ? reformat(found, count, number) : found;
    });
  }

  // --- the page ------------------------------------------------------------------------
  function ignored(el) {
    for (; el && el.nodeType === 1; el = el.parentNode) {
      if (SKIP[el.nodeName] || el.hasAttribute("data-calltrack-ignore")) return true;
    }
    return false;
  }

  // Each place keeps its own text (or href) on the side, so any number, or none, can be
  // written over it again; text the page itself changes becomes the new original.
  function render(node, now, mine, originals, write) {
    if (mine.get(node) !== now) originals.set(node, now);
    var original = originals.get(node);
    var next = shown ? write(original) : original;
    if (next === original) {
      originals["delete"](node);
      mine["delete"](node);
    } else if (ignored(node.nodeType === 1 ? node : node.parentNode)) {
      return;
    } else {
      mine.set(node, next);
    }
    if (next !== now) {
      if (node.nodeType === 1) node.setAttribute("href", next);
      else node.nodeValue = next;
    }
  }

  function renderText(node) {
    render(node, node.nodeValue, ourText, origText, function (text) {
      return swapped(text, shown);
    });
  }

  function renderLink(a) {
    var href = a.getAttribute("href") || "";
    if (!/^tel:/i.test(href) && !ourHref.has(a)) return;
    render(a, href, ourHref, origHref, function (original) {
      if (!/^tel:/i.test(original)) return original;
      var raw = original.slice(4), encoded = raw.indexOf("%") >= 0;
      try { if (encoded) raw = decodeURIComponent(raw); } catch (e) { return original; }
      var value = swapped(raw, shown);
      return value === raw ? original : original.slice(0, 4) + (encoded ? encodeURI(value) : value);
    });
  }

  function scan(root) {
    if (!root || !business.length) return;
    if (root.nodeType === 3) { renderText(root); return; }
    if (root.nodeType !== 1 && root.nodeType !== 9 && root.nodeType !== 11) return;
    if (root.nodeType === 1 && SKIP[root.nodeName]) return;
    var walker = d.createTreeWalker(root, 4 /* text */);
    for (var n = walker.nextNode(); n; n = walker.nextNode()) renderText(n);
    if (root.nodeName === "A") renderLink(root);
    var links = root.querySelectorAll ? root.querySelectorAll("a[href]") : [];
    for (var i = 0; i < links.length; i++) renderLink(links[i]);
  }

  function observe() {
    if (!w.MutationObserver) return;
    // Runs before the next paint, so late content never flashes the business number.
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        var r = records[i];
        if (r.type === "childList") {
          for (var j = 0; j < r.addedNodes.length; j++) scan(r.addedNodes[j]);
        } else if (r.type === "characterData") {
          renderText(r.target);
        } else if (r.target.nodeName === "A") {
          renderLink(r.target);
        }
      }
    }).observe(d.documentElement, {
      childList: true, subtree: true, characterData: true,
      attributes: true, attributeFilter: ["href"]
    });
    // Single-page apps: a route change may re-use nodes the observer saw being filled.
    ["pushState", "replaceState"].forEach(function (name) {
      var original = w.history[name];
      if (typeof original !== "function") return;
      w.history[name] = function () {
        var result = original.apply(this, arguments);
        setTimeout(function () { scan(d.body); }, 0);
        return result;
      };
    });
    w.addEventListener("popstate", function () { scan(d.body); });
  }

  function show(digits, answer) {
    var changed = digits !== shown;
    shown = digits;
    if (changed) scan(d.body);
    if (changed || answer) {
      w.dispatchEvent(new CustomEvent("calltrack:number", { detail: {
        number: api.number(), tracked: !!digits, sessionId: state.sid || null,
        expiresAt: answer ? answer.expires_at || null : null,
        fallbackReason: answer ? answer.fallback_reason || null : null
      } }));
    }
  }

  // --- the service ---------------------------------------------------------------------
  function visitContext() {
    var q = new URLSearchParams(w.location.search);
    var c = { landing_url: w.location.href.slice(0, 2048) };
    if (d.referrer) c.referrer = d.referrer.slice(0, 2048);
    PARAMS.forEach(function (k) { var v = q.get(k); if (v) c[k] = v.slice(0, 255); });
    var ga = /(?:^|;\s*)_ga=GA\d\.\d+\.(\d+\.\d+)/.exec(d.cookie);
    if (ga) c.ga_client_id = ga[1];
    return c;
  }

  // The campaign this page was reached from: a new one starts a new visit.
  function touchOf(c) {
    return PARAMS.map(function (k) { return c[k] || ""; }).join("|").replace(/^\|+$/, "");
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = null;
    if (!consented || d.visibilityState === "hidden") return;
    timer = setTimeout(ask, Math.max(250, ms));
  }

  function nextDelay() {
    if (!shown) return heartbeatMs * 4; // a full pool may free a number; ask, but gently
    // Renew well before the lease ends, even when the heartbeat is longer than the lease.
    return Math.min(heartbeatMs, Math.max(1000, (state.exp - Date.now()) / 2));
  }

  function ask() {
    if (!consented || inFlight || !w.fetch || !endpoint) return;
    inFlight = true;
    var body = {};
    if (pool) body.pool = pool;
    if (state.sid) body.session_id = state.sid;
    else body.context = visitContext();
    var ctl = w.AbortController ? new AbortController() : null;
    var stop = setTimeout(function () { if (ctl) ctl.abort(); }, timeoutMs);
    var retryAfter = 0;
    w.fetch(endpoint + "/get_tracking_number", {
      method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: ctl ? ctl.signal : undefined
    }).then(function (r) {
      if (r.status === 429) retryAfter = Number(r.headers.get("Retry-After")) || 0;
      if (!r.ok) throw new Error("calltrack: HTTP " + r.status);
      return r.json();
    }).then(function (a) {
      failures = 0;
      if (!consented) return; // consent withdrawn while asking
      if (a.session_id) state.sid = a.session_id;
      if (a.tracked && a.phonenumber) {
        state.num = digitsOf(a.phonenumber);
        state.exp = Date.parse(a.expires_at) || Date.now() + heartbeatMs;
      } else {
        state.num = null;
      }
      save();
      show(state.num, a);
      schedule(nextDelay());
    })["catch"](function () {
      // Down, slow or refusing: the page keeps what it shows and asks again later.
      failures++;
      schedule(Math.max(retryAfter * 1000, Math.min(300000, 5000 * Math.pow(2, failures - 1))));
    }).then(function () {
      clearTimeout(stop);
      inFlight = false;
    });
  }

  function start() {
    var stored = load(), now = Date.now();
    var touch = touchOf(visitContext());
    if (stored.sid && now - (stored.seen || 0) < IDLE_MS && (!touch || touch === stored.touch)) {
      state = stored;
    } else {
      forget();
    }
    if (touch) state.touch = touch;
    // A lease we know to be live is shown at once; the service confirms it right after.
    if (state.num && state.exp > now + 1000) show(state.num, null);
    ask();
  }

  d.addEventListener("visibilitychange", function () {
    if (!consented) return;
    if (d.visibilityState === "hidden") { clearTimeout(timer); timer = null; return; }
    if (!state.exp || state.exp - Date.now() < heartbeatMs) ask();
    else schedule(nextDelay());
  });

  var api = {
    version: VERSION,
    /** The tracking number shown, in E.164, or null while the page shows its own. */
    number: function () { return shown ? "+" + shown : null; },
    /** A tel: href for buttons: the tracking number, else the first business number. */
    telHref: function () {
      var n = shown || business[0];
      return n ? "tel:+" + n : null;
    },
    sessionId: function () { return consented ? state.sid || null : null; },
    /** Grant (true) or withdraw (false) consent; withdrawing forgets the visit. */
    consent: function (granted) {
      if (granted && !consented) { consented = true; start(); }
      if (!granted) {
        consented = false;
        clearTimeout(timer);
        forget();
        show(null, null);
      }
    },
    /** Swap numbers in content the observer cannot see (a shadow root, an iframe). */
    scan: function (root) { scan(root || d.body); }
  };
  w.CallTrack = api;

  observe();
  // A tag in <head> without async runs before <body> exists.
  d.addEventListener("DOMContentLoaded", function () { scan(d.body); });
  if (consented) start();
  // Calls queued before the script loaded: (window.CallTrack = window.CallTrack || []).push(["consent", true])
  if (queued && queued.length) {
    for (var q = 0; q < queued.length; q++) {
      var call = queued[q];
      if (call && typeof api[call[0]] === "function") api[call[0]].apply(api, call.slice(1));
    }
  }
})(window, document);
