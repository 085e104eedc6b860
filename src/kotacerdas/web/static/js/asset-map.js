/* The public asset map (/peta-aset): the assets in view, loaded from the map API on every move and filter change.
   The server simplifies the roads for the zoom and clusters the points, so this script only draws what it gets:
   one layer per asset type (the layer control shows or hides a type), lines and dots coloured by condition, and
   clusters as a number in a ring of their conditions' colours. The filter form works without this script (it
   reloads the page); with it, a change redraws the map and keeps the address in step. */
(function () {
  "use strict";

  var element = document.getElementById("asset-map");
  if (!element || typeof window.L === "undefined" || !window.fetch) {
    return; // the page explains itself without the map (noscript), and the filter form still works
  }
  var L = window.L;
  var config = element.dataset;
  var BACKDROP = { color: "#0b3c5d", weight: 1.5, opacity: 0.8, fillColor: "#0b5394", fillOpacity: 0.05 };

  function parseJson(value, fallback) {
    try {
      return JSON.parse(value || "");
    } catch (error) {
      return fallback;
    }
  }

  var types = parseJson(config.layers, []);
  var conditionLabels = parseJson(config.conditionLabels, {});
  var conditionColours = parseJson(config.conditionColours, {});
  var form = document.querySelector("[data-asset-filters]");
  var statusLine = document.querySelector("[data-map-status]");

  function say(message) {
    if (statusLine) statusLine.textContent = message || "";
  }

  // --- the map and its layers ----------------------------------------------------------------------------------

  var map = L.map(element, { zoomSnap: 1, scrollWheelZoom: false });
  map.on("focus click", function () {
    map.scrollWheelZoom.enable();
  });
  map.on("blur", function () {
    map.scrollWheelZoom.disable();
  });
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution || "", maxZoom: 19 }).addTo(map);
  }
  map.createPane("backdrop").style.zIndex = 350;
  map.createPane("assetLines").style.zIndex = 390; // roads under the dots, so that a dot on a road can be chosen
  if (config.boundariesUrl) {
    fetch(config.boundariesUrl, { headers: { Accept: "application/geo+json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
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

  var layers = {}; // type code → layer group
  var names = {}; // type code → name
  var control = L.control.layers(null, null, { collapsed: true }).addTo(map);
  types.forEach(function (type) {
    layers[type.code] = L.layerGroup().addTo(map);
    names[type.code] = type.name;
    control.addOverlay(layers[type.code], type.name);
  });
  var clusters = L.layerGroup().addTo(map);

  // --- filters -------------------------------------------------------------------------------------------------

  function formValues() {
    var values = {};
    if (!form) return values;
    ["type", "condition", "kecamatan", "agency"].forEach(function (name) {
      var field = form.elements[name];
      if (field && field.value) values[name] = field.value;
    });
    return values;
  }

  // The types to ask for: the form's type, else the layers switched on (none asked: every type).
  function wantedTypes(values) {
    if (values.type) return [values.type];
    var shown = types
      .map(function (type) {
        return type.code;
      })
      .filter(function (code) {
        return map.hasLayer(layers[code]);
      });
    return shown.length === types.length ? [] : shown;
  }

  // --- drawing -------------------------------------------------------------------------------------------------

  function conditionText(properties) {
    return properties.condition ? conditionLabels[properties.condition] || properties.condition : config.textNotInspected;
  }

  // Built from text nodes, never from HTML strings: names come from imported data.
  function popupFor(properties, latLng) {
    var box = document.createElement("div");
    box.className = "asset-popup";
    var title = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = properties.name || "";
    title.appendChild(strong);
    box.appendChild(title);
    var kind = document.createElement("p");
    kind.textContent = (names[properties.type] || properties.type || "") + " · " + conditionText(properties);
    box.appendChild(kind);
    var open = document.createElement("a");
    open.href = "/aset/" + encodeURIComponent(properties.id);
    open.textContent = config.textOpen || "";
    open.setAttribute("data-asset-link", String(properties.id));
    var report = document.createElement("a");
    report.href =
      "/lapor?aset=" + encodeURIComponent(properties.id) +
      "&lat=" + latLng.lat.toFixed(6) + "&lon=" + latLng.lng.toFixed(6);
    report.textContent = config.textReport || "";
    report.setAttribute("data-report-link", String(properties.id));
    [open, report].forEach(function (link) {
      var line = document.createElement("p");
      line.appendChild(link);
      box.appendChild(line);
    });
    return box;
  }

  function clusterIcon(properties) {
    var count = Number(properties.count) || 0;
    var size = count < 10 ? 30 : count < 100 ? 38 : count < 1000 ? 46 : 54;
    // The ring: each condition's share of the cluster, as a conic gradient.
    var stops = [];
    var at = 0;
    Object.keys(properties.conditions || {}).forEach(function (key) {
      var share = (100 * properties.conditions[key]) / (count || 1);
      var colour = conditionColours[key] || "#78909c";
      stops.push(colour + " " + at.toFixed(1) + "% " + (at + share).toFixed(1) + "%");
      at += share;
    });
    var ring = document.createElement("div");
    ring.className = "asset-cluster";
    ring.style.width = ring.style.height = size + "px";
    if (stops.length) ring.style.setProperty("--cluster-ring", "conic-gradient(" + stops.join(", ") + ")");
    var label = document.createElement("span");
    label.textContent = String(count);
    ring.appendChild(label);
    return L.divIcon({ html: ring, className: "", iconSize: [size, size] });
  }

  function addFeature(feature) {
    var geometry = feature.geometry || {};
    var properties = feature.properties || {};
    if (properties.cluster) {
      var latLng = [geometry.coordinates[1], geometry.coordinates[0]];
      var count = Number(properties.count) || 0;
      var marker = L.marker(latLng, {
        icon: clusterIcon(properties),
        title: (config.textCluster || "").replace("{count}", String(count)),
        keyboard: true,
      });
      marker.on("click", function () {
        map.setView(latLng, Math.min(map.getZoom() + 2, 19));
      });
      clusters.addLayer(marker);
      return;
    }
    var layer = layers[properties.type];
    if (!layer) return; // a type made after the page was drawn: it shows after a reload
    var colour = properties.colour || "#78909c";
    var shape;
    if (geometry.type === "Point") {
      shape = L.circleMarker([geometry.coordinates[1], geometry.coordinates[0]], {
        radius: properties.kind === "line" ? 5 : 7,
        color: "#ffffff",
        weight: 2,
        fillColor: colour,
        fillOpacity: 1,
      });
    } else {
      shape = L.geoJSON(feature, {
        pane: "assetLines",
        style: function () {
          return { color: colour, weight: 4, opacity: 0.9, lineCap: "round" };
        },
      });
    }
    // The popup opens where the asset was chosen: for a road, the report link carries that very spot.
    shape.on("click", function (event) {
      var at = geometry.type === "Point" ? L.latLng(geometry.coordinates[1], geometry.coordinates[0]) : event.latlng;
      L.popup().setLatLng(at).setContent(popupFor(properties, at)).openOn(map);
    });
    layer.addLayer(shape);
  }

  function draw(collection) {
    clusters.clearLayers();
    Object.keys(layers).forEach(function (code) {
      layers[code].clearLayers();
    });
    var features = (collection && collection.features) || [];
    features.forEach(addFeature);
    var total = Number(collection && collection.total) || 0;
    element.setAttribute("data-total", String(total));
    element.setAttribute("data-loads", String(Number(element.getAttribute("data-loads") || 0) + 1));
    say(total ? (config.textShown || "").replace("{count}", String(total)) : config.textEmpty);
  }

  // --- loading -------------------------------------------------------------------------------------------------

  var sequence = 0;
  var controller = null;

  function load() {
    var values = formValues();
    var bounds = map.getBounds();
    var box = [
      Math.max(-180, bounds.getWest()),
      Math.max(-90, bounds.getSouth()),
      Math.min(180, bounds.getEast()),
      Math.min(90, bounds.getNorth()),
    ];
    var params = new URLSearchParams();
    params.set("bbox", box.map(function (n) { return n.toFixed(5); }).join(","));
    params.set("zoom", String(Math.round(map.getZoom())));
    var wanted = wantedTypes(values);
    if (wanted.length) params.set("type", wanted.join(","));
    ["condition", "kecamatan", "agency"].forEach(function (name) {
      if (values[name]) params.set(name, values[name]);
    });
    var mine = ++sequence;
    if (controller && window.AbortController) controller.abort();
    controller = window.AbortController ? new AbortController() : null;
    if (!values.type && !wanted.length && types.length && !types.some(function (t) { return map.hasLayer(layers[t.code]); })) {
      draw({ features: [], total: 0 }); // every layer switched off
      return;
    }
    fetch(config.mapUrl + "?" + params.toString(), {
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

  function applyFilters() {
    var values = formValues();
    var query = new URLSearchParams(values).toString();
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
    }
    load();
  }

  if (form) {
    form.addEventListener("change", applyFilters);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      applyFilters();
    });
  }
  map.on("moveend", load);
  map.on("overlayadd overlayremove", load);

  window.kotacerdas = window.kotacerdas || {};
  window.kotacerdas.assetMap = map;

  var corners = (config.bounds || "").split(",").map(Number);
  if (corners.length === 4 && corners.every(isFinite)) {
    map.fitBounds([
      [corners[0], corners[1]],
      [corners[2], corners[3]],
    ]);
  } else {
    map.setView([-2.5, 118], 4);
  }
})();
