// The server status page: polls data.json and draws the last 15 minutes as inline SVG.
(function () {
  "use strict";
  var LONGEST = 15 * 60, SHORTEST = 60, POLL_MS = 2000, SVG = "http://www.w3.org/2000/svg";
  var root = document.querySelector(".server-status");
  if (!root) { return; }
  var charts = [
    {id: "chart-throughput", series: ["rps", "shed"]},
    {id: "chart-load", series: ["in_flight", "queue"]},
    {id: "chart-latency", series: ["p50", "p99"]}
  ];

  function text(id, value) { document.getElementById(id).textContent = value; }
  function number(value, digits) {
    if (value === null || value === undefined) { return "\u2013"; }
    return Number(value).toLocaleString(undefined, {maximumFractionDigits: digits});
  }
  function niceMax(value) {
    if (!(value > 0)) { return 1; }
    var step = Math.pow(10, Math.floor(Math.log10(value)));
    var factors = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < factors.length; i++) { if (value <= factors[i] * step) { return factors[i] * step; } }
    return 10 * step;
  }
  function element(name, attributes) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    return node;
  }
  function draw(chart, history, now) {
    var svg = document.getElementById(chart.id), width = 600, height = 160;
    // The x axis spans what there is, from one minute up to fifteen.
    var span = history.length ? Math.min(LONGEST, Math.max(SHORTEST, now - history[0].t)) : SHORTEST;
    svg.parentNode.querySelector(".span").textContent = "last " + duration(Math.round(span));
    var top = 0;
    history.forEach(function (point) {
      chart.series.forEach(function (key) { if (point[key] > top) { top = point[key]; } });
    });
    top = niceMax(top);
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    [0.25, 0.5, 0.75].forEach(function (share) {
      svg.appendChild(element("line", {"class": "grid", x1: 0, x2: width, y1: height * share, y2: height * share}));
    });
    var label = element("text", {"class": "axis", x: 4, y: 12});
    label.textContent = number(top, 2);
    svg.appendChild(label);
    chart.series.forEach(function (key) {
      var d = "", drawing = false;
      history.forEach(function (point) {
        var value = point[key];
        if (value === null || value === undefined) { drawing = false; return; }
        var x = width - (now - point.t) / span * width;
        var y = height - value / top * (height - 16);
        d += (drawing ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1) + " ";
        drawing = true;
      });
      svg.appendChild(element("path", {"class": "line " + key, d: d.trim()}));
    });
  }
  function bytes(value) { return number(value / (1024 * 1024), 1) + " MB"; }
  function duration(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
  }
  function workers(list) {
    var body = document.querySelector("#workers tbody");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    list.forEach(function (worker) {
      var row = document.createElement("tr");
      [worker.worker, worker.pid, duration(worker.uptime), number(worker.requests, 0),
       worker.in_flight, bytes(worker.memory), number(worker.cpu, 1) + " s"].forEach(function (value) {
        var cell = document.createElement("td");
        cell.textContent = value;
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
  }
  function show(data) {
    if (!data.enabled) { text("status-note", data.reason); return; }
    text("status-note", "");
    var history = data.history, last = history.length ? history[history.length - 1] : {};
    text("figure-rps", number(last.rps, 1));
    text("figure-in-flight", number(last.in_flight, 0));
    text("figure-queue", number(last.queue, 0));
    text("figure-shed", number(last.shed, 1));
    text("figure-p50", number(last.p50, 1));
    text("figure-p99", number(last.p99, 1));
    text("figure-total", number(data.totals.requests, 0));
    charts.forEach(function (chart) { draw(chart, history, data.now); });
    workers(data.workers);
    root.setAttribute("data-updated", String(data.now));
  }
  function poll() {
    fetch(root.getAttribute("data-source"), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (answer) { return answer.json(); })
      .then(show)
      .catch(function (error) { text("status-note", "Could not load the status: " + error); })
      .then(function () { window.setTimeout(poll, POLL_MS); });
  }
  poll();
}());
