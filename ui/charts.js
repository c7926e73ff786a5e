// Small SVG charts for the audit console. No library, nothing fetched: every mark is an
// SVG element built with the DOM (never from HTML strings), carrying its value in
// data-value, and every chart has a legend with totals and a data table for screen readers.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  // Okabe-Ito: distinguishable with the common colour-vision deficiencies.
  const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f00", "#000000"];
  const REFUSAL_COLOURS = { denied: "#b3261e", forbidden: "#e46962", throttled: "#e69f00", failed: "#5f6368", rejected: "#7b1fa2" };
  const W = 640, H = 260, PAD = { l: 44, r: 12, t: 12, b: 40 };

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function s(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  const fmt = (n) => Number(n).toLocaleString("en-US");

  function niceMax(v) {
    if (v <= 5) return 5;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function bucketLabel(iso, bucketSeconds) {
    // "2026-11-23T14:05:00Z" -> "14:05" for buckets under a day, else "11-23".
    return bucketSeconds < 86400 ? iso.slice(11, 16) : iso.slice(5, 10);
  }

  function frame(figure, title, total, description) {
    figure.replaceChildren();
    const cap = h("figcaption", {}, title, " ");
    if (total !== undefined) cap.append(h("span", { class: "total" }, total));
    figure.append(cap);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": description });
    figure.append(svg);
    return svg;
  }

  function yAxis(svg, max) {
    const inner = H - PAD.t - PAD.b;
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const y = PAD.t + inner - (inner * i) / 4;
      svg.append(s("line", { class: i === 0 ? "axis" : "grid", x1: PAD.l, x2: W - PAD.r, y1: y, y2: y }));
      svg.append(s("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end" }, fmt(Math.round(v * 10) / 10)));
    }
    return (v) => PAD.t + inner - (inner * v) / max;
  }

  function xLabels(svg, labels, bucketSeconds, xOf) {
    const every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach((l, i) => {
      if (i % every === 0) {
        svg.append(s("text", { x: xOf(i), y: H - PAD.b + 16, "text-anchor": "middle" }, bucketLabel(l, bucketSeconds)));
      }
    });
  }

  function legend(items) {
    const ul = h("ul", { class: "legend" });
    for (const it of items) {
      const sw = h("span", { class: "swatch", "aria-hidden": "true" });
      sw.style.background = it.colour;
      ul.append(h("li", { "data-series": it.name, "data-total": it.total }, sw, `${it.name}: ${fmt(it.total)}`));
    }
    return ul;
  }

  function dataTable(caption, head, rows) {
    const table = h("table", {}, h("caption", { class: "visually-hidden" }, caption));
    const tr = h("tr");
    head.forEach((c, i) => tr.append(h("th", { scope: "col", class: i ? "num" : undefined }, c)));
    table.append(h("thead", {}, tr));
    const body = h("tbody");
    for (const r of rows) {
      const row = h("tr");
      r.forEach((c, i) => row.append(i ? h("td", { class: "num" }, fmt(c)) : h("th", { scope: "row" }, c)));
      body.append(row);
    }
    table.append(body);
    return h("details", {}, h("summary", {}, "Data table"), table);
  }

  function empty(figure, title, text) {
    figure.replaceChildren(h("figcaption", {}, title), h("p", { class: "none" }, text));
  }

  // One line per series over the buckets.
  function lineChart(figure, { title, unit, buckets, bucketSeconds, series }) {
    const total = series.reduce((a, x) => a + x.total, 0);
    if (!series.length) return empty(figure, title, `No ${unit} in this range.`);
    const svg = frame(figure, title, `${fmt(total)} ${unit}`,
      `${title}: ${series.map((x) => `${x.name} ${x.total}`).join(", ")}`);
    const max = niceMax(Math.max(1, ...series.flatMap((x) => x.values)));
    const yOf = yAxis(svg, max);
    const n = buckets.length;
    const xOf = (i) => PAD.l + ((W - PAD.l - PAD.r) * (n === 1 ? 0.5 : i / (n - 1)));
    xLabels(svg, buckets, bucketSeconds, xOf);
    series.forEach((x, k) => {
      const colour = PALETTE[k % PALETTE.length];
      const g = s("g", { "data-series": x.name });
      g.append(s("polyline", {
        points: x.values.map((v, i) => `${xOf(i)},${yOf(v)}`).join(" "),
        fill: "none", stroke: colour, "stroke-width": 2,
      }));
      x.values.forEach((v, i) => {
        if (v > 0) {
          const dot = s("circle", { class: "mark", cx: xOf(i), cy: yOf(v), r: 3, fill: colour, "data-value": v });
          dot.append(s("title", {}, `${x.name}, ${buckets[i]}: ${v}`));
          g.append(dot);
        }
      });
      svg.append(g);
    });
    figure.append(legend(series.map((x, k) => ({ name: x.name, total: x.total, colour: PALETTE[k % PALETTE.length] }))));
    figure.append(dataTable(title, ["Bucket start (UTC)", ...series.map((x) => x.name)],
      buckets.map((b, i) => [b, ...series.map((x) => x.values[i])])));
  }

  // Stacked columns per bucket.
  function stackedColumns(figure, { title, unit, buckets, bucketSeconds, series }) {
    const total = series.reduce((a, x) => a + x.total, 0);
    if (!total) return empty(figure, title, `No ${unit} in this range.`);
    const svg = frame(figure, title, `${fmt(total)} ${unit}`,
      `${title}: ${series.map((x) => `${x.name} ${x.total}`).join(", ")}`);
    const n = buckets.length;
    const sums = buckets.map((_, i) => series.reduce((a, x) => a + x.values[i], 0));
    const max = niceMax(Math.max(1, ...sums));
    const yOf = yAxis(svg, max);
    const slot = (W - PAD.l - PAD.r) / n;
    const xOf = (i) => PAD.l + slot * (i + 0.5);
    xLabels(svg, buckets, bucketSeconds, xOf);
    const width = Math.max(1, slot * 0.7);
    for (let i = 0; i < n; i++) {
      let base = 0;
      for (const x of series) {
        const v = x.values[i];
        if (!v) continue;
        const r = s("rect", {
          class: "mark", x: xOf(i) - width / 2, y: yOf(base + v), width,
          height: Math.max(1, yOf(base) - yOf(base + v)), fill: x.colour,
          "data-series": x.name, "data-value": v,
        });
        r.append(s("title", {}, `${x.name}, ${buckets[i]}: ${v}`));
        svg.append(r);
        base += v;
      }
    }
    figure.append(legend(series));
    figure.append(dataTable(title, ["Bucket start (UTC)", ...series.map((x) => x.name)],
      buckets.map((b, i) => [b, ...series.map((x) => x.values[i])])));
  }

  // Horizontal bars, one per row; optional limit marker per row.
  function bars(figure, { title, totalText, rows, valueLabel, limitLabel }) {
    if (!rows.length) return empty(figure, title, "Nothing in this range.");
    const rowH = 30, labelW = 210, top = 8;
    const height = top + rows.length * rowH + 8;
    figure.replaceChildren();
    const cap = h("figcaption", {}, title, " ");
    if (totalText) cap.append(h("span", { class: "total" }, totalText));
    figure.append(cap);
    const svg = s("svg", { viewBox: `0 0 ${W} ${height}`, role: "img",
      "aria-label": `${title}: ${rows.map((r) => `${r.name} ${r.value}`).join(", ")}` });
    // Rows with a limit are each drawn against their own limit (the dashed line), so a
    // 1/s budget and a 200/s one both read as a share of what they allow.
    const shared = niceMax(Math.max(1, ...rows.map((r) => r.value)));
    rows.forEach((r, i) => {
      const max = r.limit ? Math.max(r.limit, r.value) * 1.25 : shared;
      const xOf = (v) => labelW + ((W - labelW - 170) * v) / max;
      const y = top + i * rowH;
      const name = r.name.length > 30 ? `${r.name.slice(0, 29)}…` : r.name;
      svg.append(s("text", { x: labelW - 8, y: y + 18, "text-anchor": "end" }, name));
      const bar = s("rect", { class: "mark", x: labelW, y: y + 5, width: Math.max(1, xOf(r.value) - labelW),
        height: rowH - 10, fill: r.colour || PALETTE[0], "data-series": r.name, "data-value": r.value });
      bar.append(s("title", {}, `${r.name}: ${r.text || r.value}`));
      svg.append(bar);
      svg.append(s("text", { x: xOf(r.value) + 6, y: y + 18 }, r.text || fmt(r.value)));
      if (r.limit) {
        svg.append(s("line", { class: "limit", x1: xOf(r.limit), x2: xOf(r.limit), y1: y + 2, y2: y + rowH - 2,
          "data-limit": r.limit }));
      }
    });
    figure.append(svg);
    const head = ["Name", valueLabel];
    if (limitLabel) head.push(limitLabel);
    figure.append(dataTable(title, head, rows.map((r) => limitLabel ? [r.name, r.value, r.limit] : [r.name, r.value])));
  }

  window.Charts = { lineChart, stackedColumns, bars, REFUSAL_COLOURS, PALETTE, fmt };
})();
