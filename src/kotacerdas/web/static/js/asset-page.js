/* The map of an asset's public page (#asset-map): the asset's point or line in the colour of its condition, over
   the kecamatan boundaries. The page says where the asset is in words too, so nothing is lost without it. */
(function () {
  "use strict";

  var element = document.getElementById("asset-map");
  if (!element || typeof window.L === "undefined") {
    return;
  }
  var L = window.L;
  var config = element.dataset;
  var geometry;
  try {
    geometry = JSON.parse(config.geometry || "null");
  } catch (error) {
    return;
  }
  if (!geometry) return;
  var colour = config.colour || "#78909c";
  var map = L.map(element, { zoomSnap: 0.5, scrollWheelZoom: false });
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution || "", maxZoom: 19 }).addTo(map);
  }
  if (config.boundariesUrl && window.fetch) {
    fetch(config.boundariesUrl, { headers: { Accept: "application/geo+json, application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (collection) {
        L.geoJSON(collection, {
          interactive: false,
          style: function () {
            return { color: "#0b3c5d", weight: 1.5, opacity: 0.8, fillColor: "#0b5394", fillOpacity: 0.05 };
          },
        }).addTo(map);
      })
      .catch(function () {});
  }
  var layer = L.geoJSON(geometry, {
    style: function () {
      return { color: colour, weight: 5, opacity: 0.9 };
    },
    pointToLayer: function (feature, latlng) {
      return L.circleMarker(latlng, { radius: 9, color: "#fff", weight: 2, fillColor: colour, fillOpacity: 1 });
    },
  }).addTo(map);
  var bounds = layer.getBounds();
  if (geometry.type === "Point") {
    map.setView(bounds.getCenter(), 16);
  } else {
    map.fitBounds(bounds, { padding: [20, 20], maxZoom: 17 });
  }
  window.kotacerdas = window.kotacerdas || {};
  window.kotacerdas.assetMap = map;
})();
