/*! calltrack dni.js: shows each visitor their own tracking number in place of the
 * business number. Configure on the tag (https://github.com/calltrack, README):
 * <script async src="https://calltrack.example/dni.js?v=..." data-pool="default"
 *   data-numbers="+12125550100"></script>
 * data-endpoint (default: where this file came from), data-pool, data-numbers (comma
 * separated, E.164), data-consent="required", data-heartbeat (seconds, default 60),
 * data-timeout (seconds, default 5). Calls from the browser: CallTrack.call(), callState(),
 * hangup(), the calltrack:call event, and a button in any [data-calltrack-webcall]. */
(function (w, d) {
  "use strict";
  var queued = w.CallTrack;
  if (queued && queued.version) return; // the tag is on the page twice

  var VERSION = "1";
  var IDLE_MS = 30 * 60 * 1000; // a visit ends after 30 idle minutes, as in web analytics
  var PARAMS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "gclid", "gbraid", "wbraid", "msclkid", "fbclid"];
  // A run of digits with the separators numbers are written with; checked by digits after.
  var CANDIDATE = /\+?\(?\d[\d\s().\-\/\u00a0\u2010-\u2015]{5,}\d/g;
  var SKIP = { SCRIPT: 1, STYLE: 1, NOSCRIPT: 1, TEXTAREA: 1, TEMPLATE: 1, OPTION: 1 };

  // Some loaders run the script without currentScript: then the tag is found by its options.
  var tag = d.currentScript || d.querySelector("script[data-numbers][src*='dni.js']");
  function opt(name, fallback) {
    var v = tag && tag.getAttribute("data-" + name);
    return v == null || v === "" ? fallback : v;
  }
  function digitsOf(s) { return String(s).replace(/\D/g, ""); }

  var endpoint = opt("endpoint", tag && tag.src ? new URL(tag.src, w.location.href).origin : "");
  endpoint = endpoint.replace(/\/+$/, "");
  var pool = opt("pool", "");
  var business = opt("numbers", "").split(",").filter(function (n) {
    if (/^\s*\+/.test(n)) return true;
    // "(212) 555-0100" has no country code: matching it would guess at one.
    if (n.trim() && w.console) w.console.warn("calltrack: data-numbers must be E.164: " + n);
    return false;
  }).map(digitsOf).filter(function (n) { return n.length >= 7; });
  var aliases = []; // tracking numbers this page has shown: copies of them are ours too
  var needsConsent = opt("consent", "") === "required";
  function seconds(name, fallback, low, high) {
    var v = Number(opt(name, fallback));
    return Math.min(high, Math.max(low, isFinite(v) ? v : fallback)) * 1000;
  }
  var heartbeatMs = seconds("heartbeat", 60, 5, 3600);
  var timeoutMs = seconds("timeout", 5, 1, 30);
  var storeKey = "calltrack:" + (pool || "default");

  var consented = !needsConsent;
  var state = {}; // sid, num (digits), exp (ms), seen (ms), touch
  var shown = null; // digits of the tracking number shown, or null for the originals
  var timer = null;
  var failures = 0;
  var inFlight = null; // the AbortController of the request under way
  var epoch = 0; // bumped when consent is withdrawn: older answers are dropped
  var rescan = null;
  var last = null; // what the latest calltrack:number event said
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
  // Whether a run of digits is the business number, or a number this page showed earlier
  // (in content the page copied): which one, and how many trailing digits of the run are
  // it (all, or all but a trunk "0" or a "00" prefix). Null for any other number.
  function matched(found) {
    var known = business.concat(aliases);
    for (var i = 0; i < known.length; i++) {
      var b = known[i], extra = b.length - found.length, hit = { known: b, alias: i >= business.length };
      if (extra === 0 && found === b) hit.count = b.length;
      // A country code the page left out: "(212) 555-0100".
      else if (extra > 0 && extra <= 3 && found.length >= 7 && b.slice(extra) === found) hit.count = found.length;
      // "+44 (0)20 7946 0000": the trunk 0 written after the country code.
      for (var cc = 1; cc <= 3 && extra === -1 && !hit.count; cc++) {
        if (found === b.slice(0, cc) + "0" + b.slice(cc)) hit.count = b.length - cc;
      }
      if (!hit.count && found.charAt(0) === "0") { // "020 7946 0000", "0044 20 7946 0000"
        var rest = found.replace(/^00?/, "");
        extra = b.length - rest.length;
        if (rest.length >= 7 && extra >= 0 && extra <= 3 && b.slice(extra) === rest) hit.count = rest.length;
      }
      if (hit.count) return hit;
    }
    return null;
  }

  // Writes `number` in the place's own format, digit for digit from the right; in full where
  // the place leaves out a prefix (a country code) that `number` does not share.
  function reformat(text, hit, number) {
    var omitted = hit.known.length - hit.count;
    if (number.length !== hit.known.length || number.slice(0, omitted) !== hit.known.slice(0, omitted)) {
      return "+" + number;
    }
    var out = "", taken = 0;
    for (var i = text.length - 1; i >= 0; i--) {
      var ch = text.charAt(i);
      if (ch >= "0" && ch <= "9" && taken < hit.count) {
        ch = number.charAt(number.length - 1 - taken);
        taken++;
      }
      out = ch + out;
    }
    return out;
  }

  // With no tracking number shown, only numbers shown earlier are written back.
  function swapped(text) {
    var number = shown || business[0];
    return text.replace(CANDIDATE, function (run) {
      var groups = [], m, runs = /\d+/g, out = "", at = 0;
      while ((m = runs.exec(run))) groups.push([m.index, m.index + m[0].length]);
      for (var i = 0; i < groups.length; i++) {
        // The longest stretch of whole digit groups that is the number, so that neighbours
        // stay out of it: "(212) 555-0100 24/7", "© 2024 212-555-0100".
        for (var j = Math.min(groups.length - 1, i + 7); j >= i; j--) {
          var part = run.slice(groups[i][0], groups[j][1]), digits = digitsOf(part);
          var hit = digits.length >= 7 && matched(digits);
          if (hit && (shown || hit.alias)) {
            out += run.slice(at, groups[i][0]) + reformat(part, hit, number);
            at = groups[j][1];
            i = j;
            break;
          }
        }
      }
      return out + run.slice(at);
    });
  }

  // --- the page ------------------------------------------------------------------------
  function ignored(el) {
    for (; el && el.nodeType === 1; el = el.parentNode) {
      // An editor would save the tracking number into the page's content for good.
      if (SKIP[el.nodeName] || el.hasAttribute("data-calltrack-ignore") || el.isContentEditable) {
        return true;
      }
    }
    return false;
  }

  // Each place keeps its own text (or href) on the side, so any number, or none, can be
  // written over it again; text the page itself changes becomes the new original.
  function render(node, now, mine, originals, write) {
    if (mine.get(node) !== now) originals.set(node, now);
    var original = originals.get(node);
    var next = shown || aliases.length ? write(original) : original;
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
      return swapped(text);
    });
  }

  function renderLink(a) {
    var href = a.getAttribute("href") || "";
    if (!/^tel:/i.test(href) && !ourHref.has(a)) return;
    render(a, href, ourHref, origHref, function (original) {
      if (!/^tel:/i.test(original)) return original;
      var raw = original.slice(4), encoded = raw.indexOf("%") >= 0;
      try { if (encoded) raw = decodeURIComponent(raw); } catch (e) { return original; }
      var value = swapped(raw);
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
        // One rescan for a burst of calls (some sites replaceState on every scroll).
        if (!rescan) rescan = setTimeout(function () { rescan = null; scan(d.body); mountCall(); }, 50);
        return result;
      };
    });
    w.addEventListener("popstate", function () { scan(d.body); });
  }

  function show(digits, answer) {
    var changed = digits !== shown;
    if (digits && aliases.indexOf(digits) < 0 && business.indexOf(digits) < 0) aliases.push(digits);
    shown = digits;
    if (changed) scan(d.body);
    if (changed || answer) {
      last = {
        number: api.number(), tracked: !!digits, sessionId: state.sid || null,
        expiresAt: answer ? answer.expires_at || null : last && digits ? last.expiresAt : null,
        fallbackReason: answer ? answer.fallback_reason || null : null
      };
      w.dispatchEvent(new CustomEvent("calltrack:number", { detail: last }));
    }
  }

  // --- the service ---------------------------------------------------------------------
  function visitContext() {
    var q = new URLSearchParams(w.location.search);
    var c = { landing_url: w.location.href.slice(0, 2048) };
    if (d.referrer) c.referrer = d.referrer.slice(0, 2048);
    PARAMS.forEach(function (k) { var v = q.get(k); if (v) c[k] = v.slice(0, 255); });
    var cookies = "";
    try { cookies = d.cookie; } catch (e) { /* a sandboxed frame has none */ }
    var ga = /(?:^|;\s*)_ga=GA\d\.\d+\.(\d+\.\d+)/.exec(cookies);
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
    return Math.min(heartbeatMs, Math.max(2000, (state.exp - Date.now()) / 2));
  }

  var firstAsk = true;

  function ask() {
    if (!consented || inFlight || !w.fetch || !endpoint) return;
    var ctl = inFlight = w.AbortController ? new AbortController() : {};
    var mine = epoch;
    var body = {};
    if (pool) body.pool = pool;
    if (state.sid) body.session_id = state.sid;
    // Every page's first request carries the visit, so that a session the service no
    // longer knows starts again with its context; heartbeats carry only the session.
    if (firstAsk || !state.sid) body.context = visitContext();
    firstAsk = false;
    var stop = setTimeout(function () { if (ctl.abort) ctl.abort(); }, timeoutMs);
    var retryAfter = 0;
    w.fetch(endpoint + "/get_tracking_number", {
      method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: ctl.signal
    }).then(function (r) {
      if (r.status === 429) retryAfter = Number(r.headers.get("Retry-After")) || 0;
      if (!r.ok) throw new Error("calltrack: HTTP " + r.status);
      return r.json();
    }).then(function (a) {
      if (mine !== epoch) return; // consent was withdrawn meanwhile
      failures = 0;
      if (a.session_id) state.sid = a.session_id;
      if (a.tracked && a.phonenumber) {
        state.num = digitsOf(a.phonenumber);
        // The lease's length, not its end: this device's clock may be off by any amount.
        var ttl = Number(a.expires_in);
        state.exp = Date.now() + (ttl > 0 ? ttl * 1000 : heartbeatMs);
      } else {
        state.num = null;
      }
      save();
      show(state.num, a);
      schedule(nextDelay());
    })["catch"](function () {
      if (mine !== epoch) return;
      // Down, slow or refusing: the page keeps what it shows and asks again later, but not
      // a number whose lease has run out: by now it may be someone else's.
      failures++;
      if (shown && !(state.exp > Date.now())) show(null, null);
      schedule(Math.max(retryAfter * 1000, Math.min(300000, 5000 * Math.pow(2, failures - 1))));
    }).then(function () {
      clearTimeout(stop);
      if (inFlight === ctl) inFlight = null;
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
    if (!(state.exp - Date.now() >= heartbeatMs)) ask();
    else schedule(nextDelay());
  });

  // --- calls from the browser: webcall.js makes them, loaded on first use -----------------
  var call = { state: "idle" }, widget, loading, css;
  var BUSY = /^(connecting|ringing|connected)$/;
  function each(selector, fn) { [].forEach.call(d.querySelectorAll(selector), fn); }
  function add(parent, tag, name) {
    var el = parent.appendChild(d.createElement(tag));
    el.className = "ct-webcall-" + name;
    return el;
  }
  // Once per state change: the buttons follow it, and the page hears of it.
  function callSet(state, info) {
    if (state === call.state) return;
    call = info || {};
    call.state = state;
    each(".ct-webcall-call", function (b) { b.disabled = BUSY.test(state); });
    each(".ct-webcall-status", function (s) { s.textContent = call.message || ""; });
    d.dispatchEvent(new CustomEvent("calltrack:call", { detail: call }));
  }
  // A button and a status line in each element marked data-calltrack-webcall.
  function mountCall() {
    each("[data-calltrack-webcall]", function (place) {
      if (!endpoint || place.querySelector(".ct-webcall-call")) return;
      if (!css) {
        css = add(d.head, "link", "css");
        css.rel = "stylesheet";
        css.href = endpoint + "/webcall.css";
      }
      place.classList.add("ct-webcall");
      var b = add(place, "button", "call");
      b.type = "button";
      b.textContent = "Call from your browser";
      b.disabled = BUSY.test(call.state);
      b.onclick = function () { api.call(); };
      add(place, "p", "status").setAttribute("role", "status");
    });
  }

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
    /** The latest calltrack:number event's detail, for code that ran after it. */
    lease: function () { return last; },
    /** Grant (true) or withdraw (false) consent; withdrawing forgets the visit. */
    consent: function (granted) {
      if (granted && !consented) { consented = true; start(); }
      if (!granted) {
        consented = false;
        epoch++;
        if (inFlight && inFlight.abort) inFlight.abort();
        inFlight = null;
        clearTimeout(timer);
        forget();
        show(null, null);
      }
    },
    /** Swap numbers in content the observer cannot see (a shadow root, an iframe). */
    scan: function (root) { scan(root || d.body); },
    // A call from the browser (WebRTC); webcall.js takes over once loaded.
    call: function () {
      if (widget) return widget.call();
      if (BUSY.test(call.state) || !endpoint) return;
      mountCall();
      callSet("connecting", { message: "Connecting\u2026" });
      if (loading) return;
      loading = add(d.head, "script", "js");
      loading.onerror = function () {
        loading = null;
        callSet("failed", { message: "The call could not start: its script did not load." });
      };
      loading.src = endpoint + "/webcall.js";
    },
    // idle, connecting, ringing, connected, ended or failed
    callState: function () { return call.state; },
    hangup: function () {
      if (widget) widget.hangup();
      else if (BUSY.test(call.state)) callSet("ended", { message: "Call ended." });
    },
    // webcall.js hands itself over, once, and gets what it needs of this script.
    _webcall: function (made) {
      if (widget) return null;
      widget = made;
      return { endpoint: endpoint, pool: pool, session: api.sessionId, set: callSet, mount: mountCall };
    },
    /** The pre-load queue's push keeps working once the script is in. */
    push: function (call) {
      if (call && typeof api[call[0]] === "function" && call[0] !== "push") {
        api[call[0]].apply(api, call.slice(1));
      }
    }
  };
  w.CallTrack = api;

  observe();
  // A tag in <head> without async runs before <body> exists.
  d.addEventListener("DOMContentLoaded", function () { scan(d.body); mountCall(); });
  if (d.readyState !== "loading") mountCall();
  if (consented) start();
  // Calls queued before the script loaded: (window.CallTrack = window.CallTrack || []).push(["consent", true])
  if (queued && queued.length) {
    for (var q = 0; q < queued.length; q++) api.push(queued[q]);
  }
})(window, document);
