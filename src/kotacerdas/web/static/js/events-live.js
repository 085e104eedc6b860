/* Events pages, live: the list and map at /peristiwa and an event's page follow the server's event stream
   (Server-Sent Events at /api/v1/events/stream, with the page's filters) and change in place, without a reload.
   Everything shown is built from text nodes, never from HTML strings: titles and areas come from publishers.
   The browser's EventSource reconnects by itself after a lost connection. */
(function () {
  "use strict";

  var list = document.getElementById("event-list");
  var page = document.getElementById("event-page");
  var statusElement = document.getElementById("live-status");
  var L = window.L;

  function say(text) {
    if (statusElement && text) {
      statusElement.textContent = text;
    }
  }

  function formatTime(value) {
    try {
      var zone = document.documentElement.dataset.timezone || "Asia/Jakarta";
      return new Intl.DateTimeFormat(document.documentElement.lang || "id", {
        dateStyle: "medium",
        timeStyle: "short",
        timeZone: zone,
      }).format(new Date(value));
    } catch (error) {
      return value;
    }
  }

  function badge(labelled, extraClass) {
    var span = document.createElement("span");
    span.className = "status-badge" + (extraClass ? " " + extraClass : "");
    span.style.setProperty("--status-colour", labelled.colour);
    span.textContent = labelled.label;
    return span;
  }

  // The same markup as the event_card macro of events/public_macros.html.
  function card(event) {
    var item = document.createElement("li");
    item.className = "card event-card" + (event.ongoing ? "" : " event-over");
    item.dataset.eventId = String(event.id);
    item.style.setProperty("--event-colour", (event.level || event.category).colour);
    var meta = document.createElement("p");
    meta.className = "event-meta";
    if (event.level) {
      meta.appendChild(badge(event.level, "event-level"));
      meta.appendChild(document.createTextNode(" "));
    }
    var category = document.createElement("span");
    category.className = "event-category";
    category.textContent = event.category.label;
    meta.appendChild(category);
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(badge(event.status));
    var heading = document.createElement("h3");
    var link = document.createElement("a");
    link.href = "/peristiwa/" + event.id;
    link.textContent = event.title;
    heading.appendChild(link);
    var areas = document.createElement("p");
    areas.className = "event-areas";
    areas.textContent = event.areas.map(function (area) { return area.name; }).join(", ");
    var time = document.createElement("p");
    time.className = "event-time";
    var stamp = document.createElement("time");
    stamp.dateTime = event.updated_at;
    stamp.textContent = formatTime(event.updated_at);
    time.appendChild(stamp);
    [meta, heading, areas, time].forEach(function (part) { item.appendChild(part); });
    return item;
  }

  function makeMap(element) {
    if (!element || typeof L === "undefined") {
      return null;
    }
    var map = L.map(element, { scrollWheelZoom: false }).setView([-3.1, 102.9], 9);
    if (element.dataset.tileUrl) {
      L.tileLayer(element.dataset.tileUrl, { attribution: element.dataset.tileAttribution || "" }).addTo(map);
    }
    return map;
  }

  function shapeOf(event) {
    var colour = (event.level || event.category).colour;
    var style = { color: colour, weight: 2, fillColor: colour, fillOpacity: 0.25 };
    if (event.geometry && event.geometry.type !== "Point") {
      return L.geoJSON(event.geometry, { style: function () { return style; } });
    }
    return L.circleMarker([event.lat, event.lon], { radius: 9, color: "#ffffff", weight: 2, fillColor: colour, fillOpacity: 1 });
  }

  function followStream(url, onEvent) {
    if (!url || !window.EventSource) {
      return;
    }
    var source = new EventSource(url);
    source.addEventListener("open", function () { say(statusElement && statusElement.dataset.textLive); });
    source.addEventListener("error", function () { say(statusElement && statusElement.dataset.textOffline); });
    source.addEventListener("event", function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      onEvent(event);
    });
  }

  function startList() {
    var dataElement = document.getElementById("events-data");
    var events = dataElement ? JSON.parse(dataElement.textContent) : [];
    var map = makeMap(document.getElementById("events-map"));
    var layers = {};

    function draw(event) {
      if (!map) return;
      if (layers[event.id]) {
        map.removeLayer(layers[event.id]);
      }
      var layer = shapeOf(event);
      var popup = document.createElement("div");
      var link = document.createElement("a");
      link.href = "/peristiwa/" + event.id;
      link.textContent = event.title;
      popup.appendChild(link);
      popup.appendChild(document.createElement("br"));
      popup.appendChild(document.createTextNode(event.category.label + (event.level ? " · " + event.level.label : "")));
      layer.bindPopup(popup);
      layer.addTo(map);
      layers[event.id] = layer;
    }

    events.forEach(draw);
    if (map && events.length) {
      var group = L.featureGroup(Object.keys(layers).map(function (key) { return layers[key]; }));
      map.fitBounds(group.getBounds().pad(0.3), { maxZoom: 12 });
    }

    followStream(list.dataset.streamUrl, function (event) {
      var old = list.querySelector('[data-event-id="' + event.id + '"]');
      if (old) {
        old.remove();
      }
      list.insertBefore(card(event), list.firstChild);
      var empty = document.getElementById("events-empty");
      if (empty) {
        empty.remove();
      }
      draw(event);
      if (statusElement && statusElement.dataset.textNew) {
        say(statusElement.dataset.textNew.replace("{title}", event.title));
      }
    });

    var nearButton = document.getElementById("near-me");
    if (nearButton && navigator.geolocation) {
      nearButton.hidden = false;
      nearButton.addEventListener("click", function () {
        navigator.geolocation.getCurrentPosition(
          function (position) {
            var params = new URLSearchParams(window.location.search);
            params.set("lat", position.coords.latitude.toFixed(5));
            params.set("lon", position.coords.longitude.toFixed(5));
            window.location.search = params.toString();
          },
          function () { say(nearButton.dataset.textError); },
          { enableHighAccuracy: false, timeout: 10000, maximumAge: 300000 }
        );
      });
    }
  }

  function startPage() {
    var id = Number(page.dataset.eventId);
    var element = document.getElementById("event-map");
    var map = makeMap(element);
    if (map) {
      var geometry = element.dataset.geometry ? JSON.parse(element.dataset.geometry) : null;
      var colour = getComputedStyle(page).getPropertyValue("--event-colour") || "#c62828";
      var layer = geometry && geometry.type !== "Point"
        ? L.geoJSON(geometry, { style: function () { return { color: colour, weight: 2, fillOpacity: 0.25 }; } })
        : L.circleMarker([Number(element.dataset.lat), Number(element.dataset.lon)], { radius: 9, fillColor: colour, color: "#fff", fillOpacity: 1 });
      layer.addTo(map);
      if (layer.getBounds) {
        map.fitBounds(layer.getBounds().pad(0.3), { maxZoom: 14 });
      } else {
        map.setView(layer.getLatLng(), 13);
      }
    }
    followStream(page.dataset.streamUrl, function (event) {
      if (event.id !== id) {
        return;
      }
      document.getElementById("event-title").textContent = event.title;
      var status = document.getElementById("event-status");
      status.textContent = event.status.label;
      status.style.setProperty("--status-colour", event.status.colour);
      var level = document.getElementById("event-level");
      level.textContent = "";
      if (event.level) {
        level.appendChild(badge(event.level, "event-level"));
      }
      say(statusElement && statusElement.dataset.textUpdated);
    });
  }

  if (list) {
    startList();
  } else if (page) {
    startPage();
  }
})();
