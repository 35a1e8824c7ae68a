// The demo site's own code: a two-route single-page app, a footer that arrives late, and
// the panel that places an emulated call and shows how calltrack credited it.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var ROUTES = { "/demo": "home", "/demo/services": "services" };

  function render() {
    var path = location.pathname.replace(/\/+$/, "");
    var name = ROUTES[path] || "home";
    $("view").replaceChildren($("route-" + name).content.cloneNode(true));
    document.querySelectorAll("nav a").forEach(function (a) {
      a.classList.toggle("active", ROUTES[a.getAttribute("href")] === name);
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-route]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    history.pushState(null, "", link.getAttribute("href"));
    render();
  });
  window.addEventListener("popstate", render);
  render();

  // A footer rendered after the rest, as a lazy widget would be.
  setTimeout(function () {
    $("footer").innerHTML = "© Harbor Plumbing &amp; Heating · 24/7 dispatch " +
      "<a id=\"footer-call\" href=\"tel:+12125550100\">(212) 555-0100</a>";
  }, 1200);

  // --- the panel -------------------------------------------------------------------------
  function pretty(e164) {
    var m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(e164 || "");
    return m ? "+1 (" + m[1] + ") " + m[2] + "-" + m[3] : e164;
  }
  function status(text) { $("p-status").textContent = text; }
  function sleep(ms) { return new Promise(function (done) { setTimeout(done, ms); }); }

  var query = new URLSearchParams(location.search);
  var visit = ["utm_source", "utm_medium", "utm_campaign", "gclid"].filter(function (k) {
    return query.get(k);
  }).map(function (k) { return k + "=" + query.get(k); });
  $("p-visit").textContent = visit.length ? visit.join(" · ") : "direct (no campaign in the URL)";

  function showNumber(detail) {
    $("p-number").textContent = detail.number ? pretty(detail.number) :
      "the business number (" + (detail.fallbackReason || "no answer from calltrack") + ")";
    $("p-expires").textContent = detail.expiresAt ? new Date(detail.expiresAt).toLocaleTimeString() : "–";
    $("p-session").textContent = detail.sessionId || "–";
  }
  window.addEventListener("calltrack:number", function (event) { showNumber(event.detail); });
  // The snippet loads on its own and may have answered before this script ran.
  if (window.CallTrack && window.CallTrack.lease && window.CallTrack.lease()) {
    showNumber(window.CallTrack.lease());
  }

  async function json(response) {
    var body = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(body.detail || "HTTP " + response.status);
    return body;
  }

  function progress(call) {
    if (call.state === "ended") {
      return "Call ended (" + (call.disposition || "?") + "), talk time " + call.billsec + " s.";
    }
    if (call.dial) return "Forwarded to the business at " + pretty(call.dial.number) + ": " + call.dial.status + "…";
    return "Ringing calltrack's webhook…";
  }

  async function placeCall() {
    var number = window.CallTrack && window.CallTrack.number();
    if (!number) {
      status("No tracking number on the page yet: a call to the business number is not credited to this visit.");
      return;
    }
    var button = $("p-call");
    button.disabled = true;
    $("p-result").hidden = true;
    var caller = "+1617555" + String(1000 + Math.floor(Math.random() * 9000));
    try {
      status("Dialling " + pretty(number) + " from " + pretty(caller) + "…");
      var placed = await json(await fetch("/emulator/inbound", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ from: caller, to: number, script: { answer_after: 1, talk: 3 } })
      }));
      var call = placed;
      for (var i = 0; i < 120 && call.state !== "ended"; i++) {
        await sleep(400);
        call = await json(await fetch("/emulator/inbound/" + placed.token));
        status(progress(call));
      }
      var recorded = null;
      for (var j = 0; j < 40; j++) {
        var answer = await fetch("/demo/calls/" + placed.token);
        if (answer.ok) {
          recorded = await answer.json();
          if (recorded.status === "completed") break;
        }
        await sleep(250);
      }
      if (!recorded) throw new Error("calltrack has no record of the call");
      $("r-attribution").textContent = recorded.attribution;
      $("r-source").textContent = recorded.source || "(none)";
      $("r-medium").textContent = recorded.medium || "(none)";
      $("r-campaign").textContent = recorded.campaign || "(none)";
      $("r-gclid").textContent = recorded.gclid || "(none)";
      $("r-talk").textContent = recorded.talk_seconds == null ? "–" : recorded.talk_seconds + " s";
      $("p-result").hidden = false;
    } catch (error) {
      status("The call could not be placed: " + error.message);
    } finally {
      button.disabled = false;
    }
  }
  $("p-call").addEventListener("click", placeCall);
})();
