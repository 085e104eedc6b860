/* The report form (/lapor): pick the place by tapping the map or with the browser's location, show the chosen
   category's extra questions, and list open reports of the same category nearby (to follow instead of sending a
   duplicate). The form works without this script: all questions are then shown, and the coordinates are typed. */
(function () {
  "use strict";

  var form = document.querySelector("[data-report-form]");
  if (!form) {
    return;
  }
  var text = form.dataset;
  var category = form.querySelector("#f-category");
  var latInput = form.querySelector("#f-lat");
  var lonInput = form.querySelector("#f-lon");
  var statusLine = form.querySelector("[data-location-status]");
  var nearbyBox = form.querySelector("[data-nearby]");
  var nearbyList = form.querySelector("[data-nearby-list]");
  var photoInput = form.querySelector("#f-photos");
  var photoMessage = form.querySelector("[data-photo-message]");
  var photoHint = form.querySelector("[data-photo-required-hint]");

  // An error summary (from the server) takes the focus, so that a screen reader reads it first.
  var summary = document.getElementById("form-error");
  if (summary) {
    summary.focus();
  }

  function say(message) {
    if (statusLine) statusLine.textContent = message || "";
  }

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  // --- the chosen category's questions and photo rule ------------------------------------------------------

  var questionSets = Array.prototype.slice.call(form.querySelectorAll("fieldset[data-category]"));
  var noJsNote = form.querySelector("[data-no-js-note]");
  if (noJsNote) noJsNote.hidden = true;

  function showQuestions() {
    var chosen = category ? category.value : "";
    questionSets.forEach(function (set) {
      var mine = set.dataset.category === chosen;
      set.hidden = !mine;
      set.disabled = !mine; // a disabled fieldset's answers are not sent
    });
    var option = category && category.selectedOptions ? category.selectedOptions[0] : null;
    if (photoHint) photoHint.hidden = !(option && option.hasAttribute("data-photo-required"));
  }

  // --- photos: the server checks again; this only saves a long upload that would be refused -----------------

  function checkPhotos() {
    if (!photoInput || !photoInput.files) return;
    var message = "";
    var limit = Number(text.maxPhotoMb) * 1024 * 1024;
    if (photoInput.files.length > Number(text.maxPhotos)) {
      message = text.textTooManyPhotos;
    } else {
      for (var i = 0; i < photoInput.files.length; i++) {
        if (photoInput.files[i].size > limit) message = text.textPhotoTooLarge;
      }
    }
    photoInput.setCustomValidity(message);
    if (photoMessage) photoMessage.textContent = message;
  }

  // --- the map -----------------------------------------------------------------------------------------------

  var mapElement = document.getElementById("report-location-map");
  var map = null;
  var marker = null;

  function readPoint() {
    var lat = parseFloat(String(latInput.value).replace(",", "."));
    var lon = parseFloat(String(lonInput.value).replace(",", "."));
    return isFinite(lat) && isFinite(lon) ? { lat: lat, lon: lon } : null;
  }

  function placeMarker(point) {
    if (!map) return;
    var latLng = [point.lat, point.lon];
    if (marker) {
      marker.setLatLng(latLng);
    } else {
      marker = window.L.marker(latLng, { keyboard: false, alt: "" }).addTo(map);
    }
  }

  var lookup = 0;
  function describePlace(point) {
    var mine = ++lookup;
    say(text.textLocating);
    getJson(text.locateUrl + "?lat=" + point.lat + "&lon=" + point.lon)
      .then(function (place) {
        if (mine !== lookup) return;
        if (!place.inside) {
          say(text.textOutside);
          return;
        }
        var names = [place.desa && place.desa.name, place.kecamatan && place.kecamatan.name].filter(Boolean);
        say(names.length ? text.textLocated.replace("{place}", names.join(", ")) : text.textLocatedPlain);
      })
      .catch(function () {
        if (mine === lookup) say(text.textLocatedPlain);
      });
  }

  function setPoint(lat, lon, zoomTo) {
    latInput.value = lat.toFixed(6);
    lonInput.value = lon.toFixed(6);
    var point = { lat: lat, lon: lon };
    placeMarker(point);
    if (map && zoomTo) map.setView([lat, lon], Math.max(map.getZoom(), 16));
    describePlace(point);
    findNearby();
    findAssets();
  }

  function startMap() {
    if (!mapElement || typeof window.L === "undefined") return;
    var L = window.L;
    var config = mapElement.dataset;
    map = L.map(mapElement, { zoomSnap: 0.5, scrollWheelZoom: false });
    if (config.tileUrl) {
      L.tileLayer(config.tileUrl, { attribution: config.tileAttribution || "", maxZoom: 19 }).addTo(map);
    }
    var corners = (config.bounds || "").split(",").map(Number);
    if (corners.length === 4 && corners.every(isFinite)) {
      map.fitBounds([[corners[0], corners[1]], [corners[2], corners[3]]]);
    } else {
      map.setView([-2.5, 118], 4);
    }
    if (config.boundariesUrl) {
      getJson(config.boundariesUrl)
        .then(function (collection) {
          // Drawn as a backdrop only: a tap anywhere, even on a line, chooses the place.
          L.geoJSON(collection, {
            interactive: false,
            style: function () {
              return { color: "#0b3c5d", weight: 1.5, opacity: 0.8, fillColor: "#0b5394", fillOpacity: 0.05 };
            },
          }).addTo(map);
        })
        .catch(function () {});
    }
    map.on("click", function (event) {
      setPoint(event.latlng.lat, event.latlng.lng, false);
    });
    // For scripts and browser tests that need to turn a place into a point on the screen.
    window.kotacerdas = window.kotacerdas || {};
    window.kotacerdas.reportFormMap = map;

    var start = readPoint();
    if (start) {
      placeMarker(start);
      map.setView([start.lat, start.lon], 15);
    }
  }

  // --- "use my location" -------------------------------------------------------------------------------------

  var tools = form.querySelector("[data-location-tools]");
  var locateButton = form.querySelector("[data-use-location]");
  if (tools && locateButton && navigator.geolocation) {
    tools.hidden = false;
    locateButton.addEventListener("click", function () {
      say(text.textGeoWaiting);
      locateButton.disabled = true;
      navigator.geolocation.getCurrentPosition(
        function (position) {
          locateButton.disabled = false;
          setPoint(position.coords.latitude, position.coords.longitude, true);
        },
        function (error) {
          locateButton.disabled = false;
          say(error && error.code === 1 ? text.textGeoDenied : text.textGeoFailed);
        },
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
      );
    });
  }

  // --- open reports of the same category nearby (duplicates) -------------------------------------------------

  var nearbyRequest = 0;
  var nearbyTimer = null;

  function showNearby(items) {
    nearbyList.textContent = "";
    items.forEach(function (item) {
      var report = item.report || {};
      var entry = document.createElement("li");
      var link = document.createElement("a");
      link.href = "/lapor/" + encodeURIComponent(report.tracking_code || "");
      link.textContent = (report.tracking_code || "") + " · " + (report.category_name || "");
      entry.appendChild(link);
      var meta = document.createElement("span");
      meta.className = "muted";
      var distance = text.textDistance.replace("{metres}", String(Math.round(item.distance_m || 0)));
      meta.textContent = " — " + (report.status_label || "") + ", " + distance;
      entry.appendChild(meta);
      if (report.description) {
        var snippet = document.createElement("p");
        var words = String(report.description);
        snippet.textContent = words.length > 140 ? words.slice(0, 140) + "…" : words;
        entry.appendChild(snippet);
      }
      nearbyList.appendChild(entry);
    });
    nearbyBox.hidden = items.length === 0;
  }

  function findNearby() {
    if (!nearbyBox || !nearbyList || !category) return;
    window.clearTimeout(nearbyTimer);
    nearbyTimer = window.setTimeout(function () {
      var point = readPoint();
      var code = category.value;
      var mine = ++nearbyRequest;
      if (!point || !code) {
        showNearby([]);
        return;
      }
      var url =
        text.nearbyUrl +
        "?category=" + encodeURIComponent(code) +
        "&lat=" + encodeURIComponent(point.lat) +
        "&lon=" + encodeURIComponent(point.lon);
      getJson(url)
        .then(function (body) {
          if (mine !== nearbyRequest) return;
          showNearby(Array.isArray(body) ? body : body.items || []);
        })
        .catch(function () {
          if (mine === nearbyRequest) showNearby([]);
        });
    }, 300);
  }

  // --- registered assets near the place (a report may name its road, bridge or facility) -------------------

  var assetsBox = form.querySelector("[data-assets]");
  var assetsList = form.querySelector("[data-assets-list]");
  var assetsRequest = 0;

  function chosenAsset() {
    var checked = form.querySelector('input[name="asset_id"]:checked');
    return checked ? checked.value : "";
  }

  function showAssets(items) {
    var chosen = chosenAsset();
    var kept = chosen ? assetsList.querySelector('input[value="' + chosen + '"]') : null;
    var keptEntry = kept ? kept.closest(".field-check") : null;
    assetsList.textContent = "";
    var listed = {};
    items.forEach(function (asset) {
      listed[String(asset.id)] = true;
      var entry = document.createElement("div");
      entry.className = "field-check";
      var input = document.createElement("input");
      input.type = "radio";
      input.name = "asset_id";
      input.id = "f-asset-" + asset.id;
      input.value = String(asset.id);
      input.checked = String(asset.id) === chosen;
      var label = document.createElement("label");
      label.htmlFor = input.id;
      label.textContent = asset.name + " ";
      var hint = document.createElement("span");
      hint.className = "hint";
      hint.textContent = text.textAssetDistance
        .replace("{type}", asset.type_name || "")
        .replace("{metres}", String(Math.round(asset.distance_m || 0)));
      label.appendChild(hint);
      entry.appendChild(input);
      entry.appendChild(label);
      assetsList.appendChild(entry);
    });
    // The asset chosen before (from an asset's page) stays on offer even when it is farther than the search.
    if (keptEntry && !listed[chosen]) assetsList.insertBefore(keptEntry, assetsList.firstChild);
    assetsBox.hidden = assetsList.children.length === 0;
  }

  function findAssets() {
    if (!assetsBox || !assetsList || !text.assetsNearbyUrl) return;
    var point = readPoint();
    var mine = ++assetsRequest;
    if (!point) return;
    getJson(text.assetsNearbyUrl + "?lat=" + encodeURIComponent(point.lat) + "&lon=" + encodeURIComponent(point.lon))
      .then(function (body) {
        if (mine === assetsRequest) showAssets(Array.isArray(body) ? body : []);
      })
      .catch(function () {});
  }

  // --- wiring ------------------------------------------------------------------------------------------------

  if (category) {
    category.addEventListener("change", function () {
      showQuestions();
      findNearby();
    });
  }
  showQuestions();
  if (photoInput) photoInput.addEventListener("change", checkPhotos);
  [latInput, lonInput].forEach(function (input) {
    input.addEventListener("change", function () {
      var point = readPoint();
      if (!point) return;
      placeMarker(point);
      if (map) map.panTo([point.lat, point.lon]);
      describePlace(point);
      findNearby();
      findAssets();
    });
  });

  // With the map working, the typed coordinates fold away (they stay there for whoever needs them), unless the
  // server has just said that the location is what is wrong.
  var coordinates = form.querySelector("[data-coordinates]");
  startMap();
  if (map && coordinates && !coordinates.classList.contains("error")) {
    coordinates.open = false;
  }
  if (readPoint()) {
    findNearby();
    findAssets();
  }
})();
