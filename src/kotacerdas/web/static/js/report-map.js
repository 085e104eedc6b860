/* Maps of citizen reports. #report-map (a report's page): its public position, or a circle around the village
   centre when the report is anonymous. #reports-map (/laporan): the reports in view, loaded from the map API on
   every move; the server clusters them, so a circle with a number is a group and a dot is one report. */
(function () {
  "use strict";

  if (typeof window.L === "undefined" || !window.fetch) {
    return; // the page says where the report is in words, and the list stands in for the map
  }
  var L = window.L;
  var BACKDROP = { color: "#0b3c5d", weight: 1.5, opacity: 0.8, fillColor: "#0b5394", fillOpacity: 0.05 };

  function getJson(url) {
    return fetch(url, {
      headers: { Accept: "application/geo+json, application/json" },
      credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  }

  function parseJson(value) {
    try {
      return JSON.parse(value || "{}");
    } catch (error) {
      return {};
    }
  }

  function baseMap(element) {
    var config = element.dataset;
    var map = L.map(element, { zoomSnap: 0.5, scrollWheelZoom: false });
    map.on("focus click", function () {
      map.scrollWheelZoom.enable();
    });
    map.on("blur", function () {
      map.scrollWheelZoom.disable();
    });
    if (config.tileUrl) {
      L.tileLayer(config.tileUrl, { attribution: config.tileAttribution || "", maxZoom: 19 }).addTo(map);
    }
    if (config.boundariesUrl) {
      map.createPane("backdrop").style.zIndex = 350;
      getJson(config.boundariesUrl)
        .then(function (collection) {
          L.geoJSON(collection, {
            pane: "backdrop",
            interactive: false,
            style: function () {
              return BACKDROP;
            },
          }).addTo(map);
        })
        .catch(function () {});
    }
    return map;
  }

  function regencyBounds(element) {
    var corners = (element.dataset.bounds || "").split(",").map(Number);
    if (corners.length === 4 && corners.every(isFinite)) {
      return L.latLngBounds([corners[0], corners[1]], [corners[2], corners[3]]);
    }
    return null;
  }

  // --- one report --------------------------------------------------------------------------------------------

  function showReport(element) {
    var lat = Number(element.dataset.lat);
    var lon = Number(element.dataset.lon);
    if (!isFinite(lat) || !isFinite(lon)) return;
    var map = baseMap(element);
    var colour = element.dataset.colour || "#0b4a6f";
    if (element.hasAttribute("data-approximate")) {
      L.circle([lat, lon], { radius: 1500, color: colour, weight: 2, fillColor: colour, fillOpacity: 0.15 }).addTo(map);
      map.setView([lat, lon], 12);
    } else {
      L.circleMarker([lat, lon], { radius: 9, color: "#ffffff", weight: 2, fillColor: colour, fillOpacity: 1 }).addTo(
        map
      );
      map.setView([lat, lon], 16);
    }
  }

  // --- the list's map ----------------------------------------------------------------------------------------

  function showReports(element) {
    var config = element.dataset;
    var statusLabels = parseJson(config.statusLabels);
    var categoryNames = parseJson(config.categoryNames);
    var statusLine = document.querySelector("[data-map-status]");
    var map = baseMap(element);
    var layer = L.layerGroup().addTo(map);
    var sequence = 0;
    var controller = null;

    function say(message) {
      if (statusLine) statusLine.textContent = message || "";
    }

    // Built from text nodes, never from HTML strings.
    function popupFor(properties) {
      var box = document.createElement("div");
      var title = document.createElement("p");
      var link = document.createElement("a");
      link.href = properties.url || "/lapor/" + encodeURIComponent(properties.tracking_code || "");
      link.textContent = properties.tracking_code || "";
      title.appendChild(link);
      box.appendChild(title);
      var category = categoryNames[properties.category_code];
      if (category) {
        var line = document.createElement("p");
        line.textContent = category;
        box.appendChild(line);
      }
      var status = document.createElement("p");
      status.textContent = statusLabels[properties.status] || properties.status || "";
      box.appendChild(status);
      return box;
    }

    function clusterIcon(count) {
      var size = count < 10 ? 30 : count < 100 ? 38 : count < 1000 ? 46 : 54;
      var label = document.createElement("span");
      label.textContent = String(count);
      return L.divIcon({ html: label, className: "report-cluster", iconSize: [size, size] });
    }

    function draw(collection) {
      layer.clearLayers();
      var features = (collection && collection.features) || [];
      features.forEach(function (feature) {
        var coordinates = feature.geometry && feature.geometry.coordinates;
        if (!coordinates) return;
        var latLng = [coordinates[1], coordinates[0]];
        var properties = feature.properties || {};
        if (properties.cluster) {
          var count = Number(properties.count) || 0;
          var cluster = L.marker(latLng, {
            icon: clusterIcon(count),
            title: (config.textCluster || "").replace("{count}", String(count)),
            keyboard: true,
          });
          cluster.on("click", function () {
            map.setView(latLng, Math.min(map.getZoom() + 2, map.getMaxZoom() || 19));
          });
          layer.addLayer(cluster);
        } else {
          var dot = L.circleMarker(latLng, {
            radius: 8,
            color: "#ffffff",
            weight: 2,
            fillColor: properties.status_colour || "#0b4a6f",
            fillOpacity: 1,
          });
          dot.bindPopup(popupFor(properties));
          layer.addLayer(dot);
        }
      });
      say(features.length ? config.textShown : config.textEmpty);
    }

    function load() {
      var bounds = map.getBounds();
      var west = Math.max(-180, bounds.getWest());
      var east = Math.min(180, bounds.getEast());
      var south = Math.max(-90, bounds.getSouth());
      var north = Math.min(90, bounds.getNorth());
      var url =
        config.mapUrl +
        "?bbox=" + [west, south, east, north].map(function (n) { return n.toFixed(5); }).join(",") +
        "&zoom=" + Math.round(map.getZoom()) +
        (config.query ? "&" + config.query : "");
      var mine = ++sequence;
      if (controller && window.AbortController) controller.abort();
      controller = window.AbortController ? new AbortController() : null;
      fetch(url, {
        headers: { Accept: "application/geo+json, application/json" },
        credentials: "same-origin",
        signal: controller ? controller.signal : undefined,
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (collection) {
          if (mine === sequence) draw(collection);
        })
        .catch(function (error) {
          if (mine === sequence && !(error && error.name === "AbortError")) say(config.textError);
        });
    }

    map.on("moveend", load);
    var bounds = regencyBounds(element);
    if (bounds) {
      map.fitBounds(bounds);
    } else {
      map.setView([-2.5, 118], 4);
    }
  }

  var single = document.getElementById("report-map");
  if (single) showReport(single);
  var many = document.getElementById("reports-map");
  if (many) showReports(many);
})();
