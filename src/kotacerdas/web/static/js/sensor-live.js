/* Live sensor tiles: every tile inside a [data-sensor-live] element (the /sensor page, a sensor's page, an asset's
   page) follows the server's tile stream (Server-Sent Events at /sensor/live?datastreams=…) and changes in place:
   value, unit, time, status and its colour, device health. The texts come ready from the server, in the page's
   language, and are set as text, never as HTML. The browser's EventSource reconnects by itself; the server then
   sends every tile again. Without JavaScript the page shows the readings as they were when it was loaded. */
(function () {
  "use strict";

  var MAX_IDS = 300; // the server's cap per stream; more tiles open more streams
  var FIELDS = ["value", "unit", "status", "time_text", "device", "last_seen", "battery", "signal"];
  var roots = document.querySelectorAll("[data-sensor-live]");
  if (!roots.length || !window.EventSource) {
    return;
  }
  var statusElement = document.getElementById("sensor-live-status");
  var tilesById = {};
  Array.prototype.forEach.call(roots, function (root) {
    Array.prototype.forEach.call(root.querySelectorAll("[data-datastream-id]"), function (tile) {
      var id = tile.getAttribute("data-datastream-id");
      (tilesById[id] = tilesById[id] || []).push(tile);
    });
  });
  var ids = Object.keys(tilesById);
  if (!ids.length) {
    return;
  }

  function say(kind) {
    if (!statusElement) {
      return;
    }
    statusElement.textContent = statusElement.getAttribute("data-text-" + kind) || "";
    statusElement.classList.toggle("is-live", kind === "live");
  }

  function update(tile, view) {
    FIELDS.forEach(function (name) {
      var element = tile.querySelector('[data-field="' + name + '"]');
      if (!element) {
        return;
      }
      var text = view[name] === null || view[name] === undefined || view[name] === "" ? "–" : String(view[name]);
      if (name === "unit") {
        text = view.unit || "";
      }
      if (element.textContent !== text) {
        element.textContent = text;
      }
    });
    var time = tile.querySelector('[data-field="time_text"]');
    if (time) {
      if (view.time) {
        time.setAttribute("datetime", view.time);
      } else {
        time.removeAttribute("datetime");
      }
    }
    var badge = tile.querySelector('[data-field="status"]');
    if (badge) {
      badge.style.setProperty("--status-colour", view.colour);
    }
    tile.style.setProperty("--tile-colour", view.colour);
    tile.setAttribute("data-level", view.level || "");
    tile.classList.toggle("sensor-offline", !!view.offline);
  }

  function flash(tile) {
    tile.classList.remove("sensor-updated");
    // Reading the width restarts the highlight's animation for a second change in a row.
    void tile.offsetWidth;
    tile.classList.add("sensor-updated");
  }

  function onTile(message) {
    var view;
    try {
      view = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    (tilesById[String(view.id)] || []).forEach(function (tile) {
      var before = tile.querySelector('[data-field="value"]');
      var changed = before && before.textContent !== view.value;
      update(tile, view);
      if (changed) {
        flash(tile);
      }
    });
  }

  var streams = [];
  var openCount = 0;

  // The browser retries a dropped stream by itself, but gives up for good when the server answers with an error
  // status (503 when this process already serves its cap of streams): then open it again ourselves, later and at a
  // random moment so that many pages do not come back at once.
  var RETRY_MIN_MS = 15000;
  var RETRY_SPREAD_MS = 30000;

  function follow(chunk, slot) {
    var source = new EventSource("/sensor/live?datastreams=" + chunk.join(","));
    var isOpen = false;
    source.addEventListener("open", function () {
      if (!isOpen) {
        isOpen = true;
        openCount += 1;
      }
      if (openCount === streams.length) {
        say("live");
      }
    });
    source.addEventListener("error", function () {
      if (isOpen) {
        isOpen = false;
        openCount -= 1;
      }
      say("offline");
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(function () {
          if (!leaving && streams[slot] === source) {
            follow(chunk, slot);
          }
        }, RETRY_MIN_MS + Math.random() * RETRY_SPREAD_MS);
      }
    });
    source.addEventListener("tile", onTile);
    streams[slot] = source;
  }

  for (var start = 0; start < ids.length; start += MAX_IDS) {
    follow(ids.slice(start, start + MAX_IDS), streams.length);
  }
  var leaving = false;
  window.addEventListener("pagehide", function () {
    leaving = true;
    streams.forEach(function (stream) {
      stream.close();
    });
  });
})();
