// Live spawn progress: follows the Server-Sent Events of the spawn and updates
// the page that the server rendered (bar, log, ready link, failure with Retry).
// Events use JupyterHub's format: {progress, message, ready, failed, url}.
// URLs come from data- attributes on <body>; only same-site paths are followed.
(function () {
  "use strict";

  var body = document.body;
  var progressUrl = body.dataset.progressUrl;
  var nextUrl = body.dataset.nextUrl;
  var bar = document.getElementById("progress");
  var log = document.getElementById("log");
  var readyBox = document.getElementById("ready");
  var failureBox = document.getElementById("failure");
  var failureMessage = document.getElementById("failure-message");
  if (!progressUrl || !bar || !log || !window.EventSource) {
    return; // the page keeps refreshing itself, as without JS
  }
  if (failureBox && !failureBox.hidden) {
    return; // already failed when rendered: nothing more will come
  }

  function isLocalPath(url) {
    return typeof url === "string" && url.charAt(0) === "/" &&
      url.charAt(1) !== "/" && url.charAt(1) !== "\\";
  }

  // The stream may replay the spawn's events from its start (JupyterHub's does):
  // skip the messages the server already rendered, in order.
  var rendered = Array.prototype.map.call(log.children, function (li) {
    return li.textContent;
  });
  var replayed = 0;

  function addMessage(message) {
    if (replayed < rendered.length && rendered[replayed] === message) {
      replayed += 1;
      return;
    }
    replayed = rendered.length; // the stream has moved past what was rendered
    var item = document.createElement("li");
    item.textContent = message;
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  var source = new EventSource(progressUrl);
  var finished = false;

  source.onmessage = function (event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (typeof data.progress === "number") {
      bar.value = Math.max(bar.value, Math.min(100, data.progress));
      bar.textContent = Math.round(bar.value) + "%";
    }
    if (data.message) {
      addMessage(String(data.message));
    }
    if (data.ready) {
      finished = true;
      source.close();
      bar.value = 100;
      var target = isLocalPath(nextUrl) ? nextUrl : (isLocalPath(data.url) ? data.url : "/hub/home");
      if (readyBox) {
        readyBox.hidden = false;
      }
      window.location.replace(target);
    } else if (data.failed) {
      finished = true;
      source.close();
      if (failureMessage && data.message) {
        failureMessage.textContent = String(data.message);
      }
      if (failureBox) {
        failureBox.hidden = false;
      }
    }
  };

  source.onerror = function () {
    // EventSource reconnects by itself; a closed source means it gave up.
    if (!finished && source.readyState === EventSource.CLOSED) {
      addMessage("Lost contact with podgate. Reload the page to continue.");
    }
  };
})();
