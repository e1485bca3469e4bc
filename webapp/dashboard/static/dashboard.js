/* ReplyGuard dashboard: draws the overview's charts (Chart.js, shipped alongside) and follows a
   running generation. Everything else is server-rendered; this is only what needs a script. */
(function () {
  "use strict";

  var COLORS = {
    line: "#1d4ed8",
    baseline: "#6b7280",
    band: "rgba(107, 114, 128, 0.18)",
    passed: "#1d4ed8",
    warned: "#d97706",
    blocked: "#dc2626",
    failed: "#4b5563",
  };
  var ACTIVE = ["queued", "running"];

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function formatValue(value) {
    return value === null || value === undefined ? "—" : Number(value.toPrecision(3)).toString();
  }

  // One line chart per metric: the candidate's value at each generation, the clean baseline
  // (dashed) and the band the gate tolerates (shaded, between two invisible lines).
  function drawCharts() {
    var data = readJson("chart-data");
    if (!data || typeof window.Chart === "undefined") {
      return;
    }
    // Marked by the gate's verdict: a generation promoted over a block stays marked blocked.
    var statuses = data.marks;
    var markers = statuses.map(function (status) {
      return status === "blocked" ? "crossRot" : status === "warned" ? "triangle" : "circle";
    });
    var colors = statuses.map(function (status) {
      return COLORS[status] || COLORS.passed;
    });
    var radii = statuses.map(function (status) {
      return status === "blocked" || status === "warned" ? 7 : 3;
    });
    var widths = statuses.map(function (status) {
      return status === "blocked" ? 3 : 1;
    });
    data.charts.forEach(function (chart, index) {
      var canvas = document.querySelector('canvas[data-chart="' + index + '"]');
      if (!canvas) {
        return;
      }
      new window.Chart(canvas, {
        type: "line",
        data: {
          labels: data.labels,
          datasets: [
            { label: "tolerance top", data: chart.band_high, borderWidth: 0, pointRadius: 0,
              pointHitRadius: 0, fill: false },
            { label: "within tolerance", data: chart.band_low, borderWidth: 0, pointRadius: 0,
              pointHitRadius: 0, backgroundColor: COLORS.band, fill: "-1" },
            { label: "clean baseline", data: chart.baseline, borderColor: COLORS.baseline,
              borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, fill: false },
            { label: "candidate", data: chart.values, borderColor: COLORS.line, borderWidth: 2,
              pointStyle: markers, pointRadius: radii, pointHoverRadius: radii.map(function (r) { return r + 2; }),
              pointBackgroundColor: colors, pointBorderColor: colors, pointBorderWidth: widths,
              fill: false, tension: 0 },
          ],
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: { display: false },
            tooltip: {
              filter: function (item) { return item.datasetIndex >= 2; },
              callbacks: {
                label: function (item) { return item.dataset.label + ": " + formatValue(item.raw); },
                footer: function (items) {
                  var i = items.length ? items[0].dataIndex : -1;
                  if (i < 0) { return ""; }
                  return "gate: " + statuses[i] + (data.overridden[i] ? ", overridden" : "") + " · click to open";
                },
              },
            },
          },
          scales: {
            x: { grid: { display: false } },
            y: { ticks: { maxTicksLimit: 5, callback: formatValue } },
          },
          onClick: function (event, elements, instance) {
            var points = instance.getElementsAtEventForMode(event, "index", { intersect: false }, false);
            if (points.length) {
              window.location.href = data.links[points[0].index];
            }
          },
        },
      });
    });
  }

  // While a generation is queued or running, ask the server for its stages every two seconds
  // and update the page in place; when it finishes, reload to show the decision and metrics.
  function followProgress() {
    var box = document.getElementById("progress");
    if (!box || box.dataset.active !== "true") {
      return;
    }
    var url = box.dataset.url;
    function update(generation) {
      var stages = generation.stages || {};
      box.querySelectorAll("li[data-stage]").forEach(function (item) {
        var record = stages[item.dataset.stage] || {};
        var status = record.status || "pending";
        item.className = "stage stage-" + status;
        item.querySelector(".stage-status").textContent = status;
        item.querySelector("progress").value = record.progress || 0;
        item.querySelector(".stage-seconds").textContent =
          record.seconds === undefined ? "" : record.seconds.toFixed(1) + " s";
      });
      var note = document.getElementById("live-note");
      if (note) {
        // A polite live region: screen readers hear the stage change, not every tick.
        var text = "Live: " + (generation.stage ? "stage " + generation.stage + ", " : "") +
          generation.status + ". This page checks every two seconds.";
        if (note.textContent !== text) {
          note.textContent = text;
        }
      }
      var badge = document.querySelector("#status-badge .badge");
      if (badge) {
        badge.textContent = generation.status;
        badge.className = "badge status-" + generation.status;
      }
    }
    function tick() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload(); // signed out meanwhile: the reload leads to sign-in
            return "stop";
          }
          return response.ok ? response.json() : null;
        })
        .then(function (generation) {
          if (generation === "stop") {
            return;
          }
          if (!generation) {
            window.setTimeout(tick, 2000);
            return;
          }
          update(generation);
          if (ACTIVE.indexOf(generation.status) === -1) {
            window.location.reload();
            return;
          }
          window.setTimeout(tick, 2000);
        })
        .catch(function () {
          window.setTimeout(tick, 4000); // the server is restarting: try again a little later
        });
    }
    window.setTimeout(tick, 2000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    followProgress();
  });
})();
