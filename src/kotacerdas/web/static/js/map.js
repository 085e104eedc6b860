/* The beranda map: kecamatan and desa/kelurahan boundaries from the regions API, drawn with Leaflet.
   Configuration comes from data-* attributes of #region-map; tiles only when a tile URL is configured, so the
   map also works offline. Without boundaries it falls back to one dot per kecamatan centroid. */
(function () {
  "use strict";

  var element = document.getElementById("region-map");
  if (!element) {
    return;
  }
  var config = element.dataset;
  var statusElement = document.querySelector("[data-map-status]");
  if (typeof window.L === "undefined" || !window.fetch) {
    // Leaflet did not load (or a very old browser): the box stays hidden; say so, the list below remains.
    if (statusElement) {
      statusElement.textContent = config.textError || "";
      statusElement.style.display = "block";
    }
    return;
  }
  var L = window.L;

  var STYLE_KECAMATAN = { color: "#0b3c5d", weight: 2.5, opacity: 0.95, fillColor: "#0b5394", fillOpacity: 0.07 };
  var STYLE_VILLAGE = { color: "#52677a", weight: 0.8, opacity: 0.85, fillColor: "#ffffff", fillOpacity: 0 };
  var STYLE_VILLAGE_HOVER = { fillColor: "#0b5394", fillOpacity: 0.18 };
  var STYLE_CENTROID = { radius: 7, color: "#ffffff", weight: 2, fillColor: "#b45309", fillOpacity: 1 };

  function say(text) {
    if (statusElement) {
      statusElement.textContent = text || "";
    }
  }

  function getJson(url) {
    return fetch(url, {
      headers: { Accept: "application/geo+json, application/json" },
      credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status + " for " + url);
      }
      return response.json();
    });
  }

  function levelLabel(level) {
    if (level === "kecamatan") return config.textKecamatan;
    if (level === "kelurahan") return config.textKelurahan;
    if (level === "desa") return config.textDesa;
    return level || "";
  }

  // Built from text nodes, never from HTML strings: region names come from imported data.
  function popupContent(lines) {
    var box = document.createElement("div");
    lines.forEach(function (line, index) {
      if (!line) return;
      var paragraph = document.createElement("p");
      if (index === 0) {
        var strong = document.createElement("strong");
        strong.textContent = line;
        paragraph.appendChild(strong);
      } else {
        paragraph.textContent = line;
      }
      box.appendChild(paragraph);
    });
    return box;
  }

  var map = L.map(element, { zoomSnap: 0.25, scrollWheelZoom: false });
  // Scrolling the page should scroll the page; the wheel zooms only once the map has been focused or clicked.
  map.on("focus click", function () {
    map.scrollWheelZoom.enable();
  });
  map.on("blur", function () {
    map.scrollWheelZoom.disable();
  });

  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution || "", maxZoom: 19 }).addTo(map);
  }

  var initialBounds = null;
  if (config.bounds) {
    var corners = config.bounds.split(",").map(Number);
    if (corners.length === 4 && corners.every(isFinite)) {
      initialBounds = L.latLngBounds([corners[0], corners[1]], [corners[2], corners[3]]);
    }
  }
  if (initialBounds) {
    map.fitBounds(initialBounds);
  } else {
    map.setView([-2.5, 118], 4); // Indonesia, until something is loaded
  }

  // Desa above kecamatan: their transparent fills take the clicks (their popup names the kecamatan too), while
  // the thick kecamatan lines still show between the thin desa lines.
  map.createPane("kecamatan").style.zIndex = 405;
  map.createPane("villages").style.zIndex = 415;

  var layerControl = L.control.layers(null, null, { collapsed: true }).addTo(map);
  var kecamatanNames = {};
  var labelled = []; // layers with a permanent name label, the largest area first

  function area(layer) {
    var bounds = layer.getBounds ? layer.getBounds() : null;
    if (!bounds || !bounds.isValid()) return 0;
    return (bounds.getNorth() - bounds.getSouth()) * (bounds.getEast() - bounds.getWest());
  }

  // Names of small neighbouring kecamatan collide at low zoom: keep the larger area's name, hide the other
  // until zooming in makes room. Hidden names stay in the popups and in the list below the map.
  function declutterLabels() {
    var placed = [];
    labelled.forEach(function (layer) {
      var tooltip = layer.getTooltip();
      var node = tooltip && tooltip.getElement();
      if (!node) return;
      node.classList.remove("is-hidden");
      var box = node.getBoundingClientRect();
      var clash = placed.some(function (other) {
        return box.left < other.right + 4 && box.right + 4 > other.left && box.top < other.bottom && box.bottom > other.top;
      });
      if (clash) {
        node.classList.add("is-hidden");
      } else {
        placed.push(box);
      }
    });
  }

  function scheduleDeclutter() {
    window.requestAnimationFrame(declutterLabels);
  }
  map.on("zoomend moveend", scheduleDeclutter);

  function addLabelled(layers) {
    labelled = labelled.concat(layers);
    labelled.sort(function (a, b) {
      return area(b) - area(a);
    });
    scheduleDeclutter();
  }

  function fitTo(layer, labelsOnTheRight) {
    var bounds = layer.getBounds();
    if (bounds.isValid()) {
      // Names written to the right of a dot need room past the easternmost dot.
      var right = labelsOnTheRight ? Math.min(130, map.getSize().x / 4) : 8;
      map.fitBounds(bounds, { paddingTopLeft: [16, 16], paddingBottomRight: [right, 16], animate: false });
    }
  }

  function showKecamatan(collection) {
    collection.features.forEach(function (feature) {
      var properties = feature.properties || {};
      kecamatanNames[properties.kode] = properties.nama;
    });
    var layer = L.geoJSON(collection, {
      pane: "kecamatan",
      style: function () {
        return STYLE_KECAMATAN;
      },
      onEachFeature: function (feature, featureLayer) {
        var properties = feature.properties || {};
        featureLayer.bindTooltip(String(properties.nama || ""), {
          permanent: true,
          direction: "center",
          className: "region-label",
          interactive: false,
        });
        featureLayer.bindPopup(
          popupContent([
            levelLabel("kecamatan") + " " + (properties.nama || ""),
            config.textCode + ": " + (properties.kode || ""),
          ])
        );
      },
    }).addTo(map);
    layerControl.addOverlay(layer, config.textKecamatan);
    fitTo(layer);
    addLabelled(layer.getLayers());
    return layer;
  }

  function showVillages(collections) {
    var seen = {};
    var features = [];
    collections.forEach(function (collection) {
      (collection && collection.features ? collection.features : []).forEach(function (feature) {
        var code = (feature.properties || {}).kode;
        if (code && seen[code]) return; // a level asked twice must not be drawn twice
        seen[code] = true;
        features.push(feature);
      });
    });
    if (!features.length) {
      return 0;
    }
    var layer = L.geoJSON(
      { type: "FeatureCollection", features: features },
      {
        pane: "villages",
        style: function () {
          return STYLE_VILLAGE;
        },
        onEachFeature: function (feature, featureLayer) {
          var properties = feature.properties || {};
          var parent = kecamatanNames[properties.induk];
          featureLayer.bindPopup(
            popupContent([
              levelLabel(properties.level) + " " + (properties.nama || ""),
              parent ? levelLabel("kecamatan") + " " + parent : "",
              config.textCode + ": " + (properties.kode || ""),
            ])
          );
          featureLayer.on("mouseover", function () {
            featureLayer.setStyle(STYLE_VILLAGE_HOVER);
          });
          featureLayer.on("mouseout", function () {
            featureLayer.setStyle(STYLE_VILLAGE);
          });
        },
      }
    ).addTo(map);
    layerControl.addOverlay(layer, config.textVillages);
    return features.length;
  }

  function showCentroids(page) {
    var items = (page && page.items) || [];
    var markers = [];
    items.forEach(function (item) {
      // The regions API answers {centroid: {lat, lon}}; flat centroid_lat/centroid_lon are read too.
      var lat = item.centroid ? item.centroid.lat : item.centroid_lat;
      var lon = item.centroid ? item.centroid.lon : item.centroid_lon;
      if (typeof lat !== "number" || typeof lon !== "number") return;
      var marker = L.circleMarker([lat, lon], STYLE_CENTROID);
      marker.bindTooltip(String(item.name || ""), {
        permanent: true,
        direction: "right",
        offset: [8, 0],
        className: "region-label",
      });
      marker.bindPopup(
        popupContent([levelLabel("kecamatan") + " " + (item.name || ""), config.textCode + ": " + (item.code || "")])
      );
      markers.push(marker);
    });
    if (!markers.length) {
      say(config.textEmpty);
      return;
    }
    var layer = L.featureGroup(markers).addTo(map);
    layerControl.addOverlay(layer, config.textKecamatan);
    fitTo(layer, true);
    var help = document.getElementById(element.getAttribute("aria-describedby"));
    if (help) {
      help.hidden = true; // it explains boundary lines, and there are none
      element.removeAttribute("aria-describedby");
    }
    addLabelled(markers);
    say(config.textCentroids);
  }

  function loadCentroids() {
    return getJson(config.centroidsUrl).then(showCentroids);
  }

  function loadVillages(kecamatanCount) {
    var urls = (config.villageUrls || "").split(/\s+/).filter(Boolean);
    // One level failing (say, an API that knows no "kelurahan") must not hide the others.
    var requests = urls.map(function (url) {
      return getJson(url).catch(function () {
        return null;
      });
    });
    return Promise.all(requests).then(function (collections) {
      var villages = showVillages(collections);
      say(
        (config.textShown || "")
          .replace("{kecamatan}", String(kecamatanCount))
          .replace("{villages}", String(villages))
      );
    });
  }

  say(config.textLoading);
  getJson(config.kecamatanUrl)
    .then(
      function (collection) {
        return collection && collection.features ? collection : { features: [] };
      },
      function () {
        return { features: [] };
      }
    )
    .then(function (collection) {
      if (!collection.features.length) {
        return loadCentroids();
      }
      showKecamatan(collection);
      return loadVillages(collection.features.length);
    })
    .catch(function () {
      say(config.textError);
    });
})();
