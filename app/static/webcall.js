/*! calltrack webcall.js: a call from the visitor's browser (WebRTC, SIP over WebSocket).
 * dni.js loads it the first time the page calls CallTrack.call() or the visitor clicks
 * "Call from your browser"; it is not meant to be loaded on its own. */
(function (w, d) {
  "use strict";
  // The served file names the bundle's digest here (app/api/snippet.py), so that the
  // bundle is asked for under its immutable URL.
  var JSSIP_VERSION = "{{jssip_version}}";
  var BUSY = /^(connecting|ringing|connected)$/;
  var TEXT = {
    connecting: "Connecting\u2026",
    visit: "Waiting for this visit to be known\u2026",
    microphone: "Waiting for your microphone\u2026",
    server: "Connecting to the call server\u2026",
    dialing: "Calling\u2026",
    ringing: "Ringing\u2026",
    connected: "Connected",
    muted: "Connected, microphone muted",
    ended: "Call ended.",
    insecure: "Calls from the browser need a secure (https) page. Please call us by phone instead.",
    noWebrtc: "This browser cannot make calls from a web page (no WebRTC support). " +
      "Please call us by phone instead.",
    denied: "Microphone access was denied. Allow this site to use the microphone, then try again.",
    noMicrophone: "No microphone was found. Connect one, then try again.",
    busyMicrophone: "The microphone could not be started: is another application using it?",
    noVisit: "This visit is not known yet (or tracking is declined). Please try again in a moment.",
    offline: "The call service could not be reached. Please try again.",
    refused: "The call could not start: ",
    limited: "Too many call attempts from this browser. Please try again ",
    library: "The calling library did not load. Please try again.",
    register: "Could not sign in to the call server",
    failed: "The call failed"
  };
  // JsSIP's causes, in words a visitor understands; the cause itself is shown too.
  var CAUSES = {
    "Busy": "The line is busy",
    "Rejected": "The call was declined",
    "No Answer": "Nobody answered",
    "Unavailable": "Nobody can take the call right now",
    "Not Found": "Nobody can take the call right now",
    "Connection Error": "The connection to the call server was lost",
    "Request Timeout": "The call server did not answer",
    "User Denied Media Access": "Microphone access was denied"
  };

  var api = w.CallTrack;
  var me = d.currentScript;
  var base = me && me.src ? new URL(me.src, w.location.href).origin : "";
  var host = api && typeof api._webcall === "function" ? api._webcall({ call: start, hangup: hangup }) : null;
  if (!host) return; // loaded twice, or without dni.js
  base = base || host.endpoint;

  var run = null; // the attempt under way: { ctl, stream, ua, session, registered, timer }
  var muted = false;
  var audio = null;
  var library = null; // the promise of JsSIP

  // --- the widget ----------------------------------------------------------------------
  function state() { return api.callState(); }

  function say(text) {
    [].forEach.call(d.querySelectorAll(".ct-webcall-status"), function (s) { s.textContent = text; });
  }

  function button(place, name, label, onclick) {
    var b = place.querySelector(".ct-webcall-" + name);
    if (!b) {
      b = d.createElement("button");
      b.type = "button";
      b.className = "ct-webcall-button ct-webcall-" + name;
      b.textContent = label;
      b.hidden = true;
      b.addEventListener("click", onclick);
      var status = place.querySelector(".ct-webcall-status");
      place.insertBefore(b, status);
    }
    return b;
  }

  function render() {
    var now = state();
    host.mount();
    [].forEach.call(d.querySelectorAll("[data-calltrack-webcall]"), function (place) {
      if (!place.querySelector(".ct-webcall-call")) return;
      place.setAttribute("data-ct-webcall-state", now);
      var mute = button(place, "mute", "Mute", toggleMute);
      mute.hidden = now !== "connected";
      mute.textContent = muted ? "Unmute" : "Mute";
      mute.setAttribute("aria-pressed", muted ? "true" : "false");
      button(place, "hangup", "Hang up", hangup).hidden = !BUSY.test(now);
    });
  }

  function set(next, message, cause) {
    var info = { message: message };
    if (cause) info.cause = cause;
    host.set(next, info);
    say(message);
    render();
  }

  // The remote party's audio plays here; created once, kept out of sight.
  function player() {
    if (!audio) {
      audio = d.createElement("audio");
      audio.autoplay = true;
      audio.setAttribute("playsinline", "");
      audio.className = "ct-webcall-audio";
      var place = d.querySelector("[data-calltrack-webcall]");
      (place || d.body).appendChild(audio);
    }
    return audio;
  }

  function play(stream) {
    var a = player();
    if (a.srcObject !== stream) a.srcObject = stream;
    var playing = a.play();
    if (playing && playing["catch"]) playing["catch"](function () { /* autoplay refused */ });
  }

  // --- one attempt ---------------------------------------------------------------------
  function problem(text, cause) { return { text: text, cause: cause }; }
  var STOPPED = problem("stopped");
  function check(r) { if (run !== r) throw STOPPED; }
  function sleep(ms) { return new Promise(function (done) { setTimeout(done, ms); }); }

  function start() {
    if (run) return;
    var r = run = { ctl: w.AbortController ? new AbortController() : null };
    muted = false;
    set("connecting", TEXT.connecting);
    attempt(r).then(null, function (error) {
      if (error === STOPPED || run !== r) { release(r); return; }
      if (!error || !error.text) {
        // A bug of this script, not the visitor's: keep it visible to developers.
        if (w.console) w.console.error("calltrack webcall:", error);
        error = problem(TEXT.failed + ".", error && error.name);
      }
      finish(r, "failed", error.text, error.cause);
    });
  }

  // Ends the attempt r, if it is still the one under way, in state "next".
  function finish(r, next, message, cause) {
    if (run !== r) return;
    run = null;
    release(r);
    muted = false;
    if (audio) audio.srcObject = null;
    set(next, message, cause);
  }

  // Lets go of everything an attempt holds: the request, the microphone, the SIP agent
  // (which unregisters and closes its socket). Safe to call more than once.
  function release(r) {
    clearTimeout(r.timer);
    if (r.ctl) r.ctl.abort();
    var session = r.session;
    if (session && !session.isEnded()) {
      // CANCEL or BYE; its own events find the attempt over and change nothing.
      try { session.terminate(); } catch (e) { /* ended meanwhile */ }
    }
    if (r.stream) r.stream.getTracks().forEach(function (t) { t.stop(); });
    var ua = r.ua;
    r.ua = null;
    if (ua) {
      try { ua.stop(); } catch (e) { /* already stopped */ }
    }
  }

  function hangup() {
    if (run) finish(run, "ended", TEXT.ended);
  }

  function toggleMute() {
    var r = run;
    if (!r || !r.session || state() !== "connected") return;
    muted = !muted;
    if (muted) r.session.mute({ audio: true });
    else r.session.unmute({ audio: true });
    say(muted ? TEXT.muted : TEXT.connected);
    render();
  }

  async function attempt(r) {
    if (w.isSecureContext === false) throw problem(TEXT.insecure, "insecure context");
    var media = w.navigator.mediaDevices;
    if (!w.RTCPeerConnection || !media || !media.getUserMedia) {
      throw problem(TEXT.noWebrtc, "no WebRTC");
    }
    var session = await visit(r);
    say(TEXT.microphone);
    try {
      r.stream = await media.getUserMedia({ audio: true, video: false });
    } catch (e) {
      check(r);
      throw problem(microphoneText(e), e && e.name);
    }
    check(r);
    say(TEXT.server);
    var got = await Promise.all([credentials(r, session), loadLibrary()]);
    check(r);
    register(r, got[0], got[1]);
  }

  // The visit's session id, which dni.js may still be asking the service for.
  async function visit(r) {
    for (var waited = 0; !host.session(); waited += 250) {
      if (waited >= 5000) throw problem(TEXT.noVisit, "no session");
      if (!waited) say(TEXT.visit);
      await sleep(250);
      check(r);
    }
    return host.session();
  }

  function microphoneText(error) {
    var name = error && error.name;
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      return TEXT.noMicrophone;
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
      return TEXT.busyMicrophone;
    }
    return TEXT.denied; // NotAllowedError, SecurityError, PermissionDeniedError
  }

  function later(retryAfter) {
    var s = Math.ceil(Number(retryAfter));
    if (!(s > 0)) return "in a moment.";
    if (s <= 90) return "in " + s + (s === 1 ? " second." : " seconds.");
    var m = Math.ceil(s / 60);
    return "in " + m + " minutes.";
  }

  // Short-lived SIP credentials for this visit; never logged, never stored.
  async function credentials(r, session) {
    var body = { session_id: session };
    if (host.pool) body.pool = host.pool;
    var timer = setTimeout(function () { if (r.ctl) r.ctl.abort(); }, 10000);
    var response, answer;
    try {
      response = await w.fetch(host.endpoint + "/web_to_call", {
        method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body), signal: r.ctl ? r.ctl.signal : undefined
      });
      answer = await response.json().then(null, function () { return {}; });
    } catch (e) {
      check(r);
      throw problem(TEXT.offline, "network");
    } finally {
      clearTimeout(timer);
    }
    check(r);
    var status = response.status;
    if (status === 429) throw problem(TEXT.limited + later(response.headers.get("Retry-After")), "HTTP 429");
    if (!response.ok) {
      var detail = answer && typeof answer.detail === "string" ? answer.detail : "HTTP " + status + ".";
      throw problem(TEXT.refused + detail, "HTTP " + status);
    }
    if (!answer || !answer.websocket_url || !answer.uri || !answer.password || !answer.dial) {
      throw problem(TEXT.refused + "the service's answer is incomplete.", "bad answer");
    }
    return answer;
  }

  function loadLibrary() {
    if (!library) {
      library = new Promise(function (resolve, reject) {
        var before = w.JsSIP;
        var s = d.createElement("script");
        s.onload = function () {
          var lib = w.JsSIP;
          // A page with a JsSIP of its own keeps it; this one is used here only.
          if (before) w.JsSIP = before;
          if (lib && lib !== before && lib.UA) resolve(lib);
          else reject(problem(TEXT.library, "JsSIP"));
        };
        s.onerror = function () { reject(problem(TEXT.library, "JsSIP")); };
        s.src = base + "/webcall/jssip.min.js?v=" + JSSIP_VERSION;
        d.head.appendChild(s);
      });
      library.then(null, function () { library = null; }); // the next attempt tries again
    }
    return library;
  }

  // The headers the service asks the INVITE to carry, as "Name: value" lines.
  function extraHeaders(answer) {
    var out = [], given = answer.headers || {};
    Object.keys(given).forEach(function (name) {
      var value = String(given[name]);
      if (/^[A-Za-z0-9-]+$/.test(name) && !/[\r\n]/.test(value)) out.push(name + ": " + value);
    });
    if (!out.length) out.push("X-Calltrack-Session: " + answer.session_id);
    return out;
  }

  function causeOf(event) {
    var cause = event && event.cause ? String(event.cause) : "unknown";
    var reply = event && event.message && event.message.status_code;
    return { cause: cause, shown: reply ? cause + ", SIP " + reply : cause };
  }

  function register(r, answer, JsSIP) {
    var ua;
    try {
      var config = {
        sockets: [new JsSIP.WebSocketInterface(answer.websocket_url)],
        uri: answer.uri,
        password: answer.password,
        register: true,
        register_expires: Math.max(60, Math.min(600, Number(answer.expires_in) || 600)),
        session_timers: false,
        user_agent: "calltrack-webcall JsSIP/" + JsSIP.version
      };
      if (answer.username) config.authorization_user = answer.username;
      ua = r.ua = new JsSIP.UA(config);
    } catch (e) {
      throw problem(TEXT.register + " (" + (e && e.parameter ? "bad " + e.parameter : "bad credentials") + ").", "configuration");
    }
    ua.on("registered", function () {
      if (run !== r || r.registered) return;
      r.registered = true;
      clearTimeout(r.timer);
      dial(r, answer, ua);
    });
    ua.on("registrationFailed", function (e) {
      if (run !== r || r.registered) return;
      var c = causeOf(e);
      finish(r, "failed", TEXT.register + " (" + c.shown + ").", c.cause);
    });
    // Before the call is placed a lost socket ends the attempt; JsSIP would retry for ever.
    ua.on("disconnected", function () {
      if (run !== r || r.session) return;
      finish(r, "failed", TEXT.register + " (it could not be reached).", "Connection Error");
    });
    r.timer = setTimeout(function () {
      if (!r.registered) finish(r, "failed", TEXT.register + " (no answer).", "Request Timeout");
    }, 20000);
    ua.start();
  }

  function dial(r, answer, ua) {
    say(TEXT.dialing);
    try {
      r.session = ua.call(answer.dial, {
        extraHeaders: extraHeaders(answer),
        mediaConstraints: { audio: true, video: false },
        mediaStream: r.stream, // the microphone granted earlier; this script stops it
        rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
        eventHandlers: {
          // Fired inside ua.call(), hence here: the remote audio goes to our <audio>.
          peerconnection: function (e) {
            e.peerconnection.addEventListener("track", function (t) {
              if (run === r) play(t.streams && t.streams[0] ? t.streams[0] : new MediaStream([t.track]));
            });
          },
          progress: function () { if (run === r && state() === "connecting") set("ringing", TEXT.ringing); },
          accepted: function () { if (run === r) set("connected", TEXT.connected); },
          confirmed: function () {
            if (run !== r) return;
            if (state() !== "connected") set("connected", TEXT.connected);
            var pc = r.session && r.session.connection;
            if (pc && (!audio || !audio.srcObject)) {
              var tracks = pc.getReceivers().map(function (x) { return x.track; }).filter(Boolean);
              if (tracks.length) play(new MediaStream(tracks));
            }
          },
          ended: function (e) { finish(r, "ended", TEXT.ended, causeOf(e).cause); },
          failed: function (e) {
            var c = causeOf(e);
            var words = CAUSES[c.cause] || TEXT.failed;
            finish(r, "failed", words + " (" + c.shown + ").", c.cause);
          }
        }
      });
    } catch (e) {
      finish(r, "failed", TEXT.failed + " (" + (e && e.message ? e.message : "could not dial") + ").", "dial");
    }
  }

  // Leaving the page ends the call (and frees the microphone) rather than dropping it.
  w.addEventListener("pagehide", hangup);

  render();
  // The page asked for a call while this script was on its way.
  if (state() === "connecting") start();
})(window, document);
