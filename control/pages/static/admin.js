// Admin panel live updates: every few seconds, fetch /hub/admin/data with the
// page's own query (from data-admin-data on <body>) and swap in the fragments
// the server rendered (already escaped there). No inline script: the CSP forbids it.
// Without JavaScript the page refreshes itself (a <noscript> meta refresh).
(function () {
  "use strict";

  var dataUrl = document.body.dataset.adminData;
  var xsrf = document.body.dataset.xsrf || "";
  var PERIOD_MS = 2500;
  if (!dataUrl || !window.fetch || dataUrl.charAt(0) !== "/" || dataUrl.charAt(1) === "/") {
    return;
  }
  var failures = 0;

  function apply(fragments) {
    Object.keys(fragments).forEach(function (id) {
      var element = document.getElementById(id);
      if (element && element.innerHTML !== fragments[id]) {
        element.innerHTML = fragments[id];
      }
    });
    document.body.dataset.adminUpdated = String(Date.now());
  }

  function schedule() {
    // Back off while the hub does not answer; paused while the tab is hidden.
    window.setTimeout(poll, PERIOD_MS * Math.min(8, 1 + failures));
  }

  function poll() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(dataUrl, { credentials: "same-origin", headers: { Accept: "application/json", "X-XSRFToken": xsrf } })
      .then(function (response) {
        if (response.status === 403) {
          throw new Error("refused");
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        apply(data.html || {});
        schedule();
      })
      .catch(function (error) {
        failures += 1;
        if (String(error.message) === "refused") {
          // Signed out, or no longer an admin: stop; the next navigation shows why.
          document.body.dataset.adminLive = "stopped";
          return;
        }
        schedule();
      });
  }

  schedule();
})();
