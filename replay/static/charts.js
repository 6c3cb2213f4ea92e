// Small hand-written SVG charts for the statistics view: no library, no build step.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fed", "#8e44ad", "#2e9d5b", "#e39b1b", "#d93b3b", "#16a2b8", "#5d6d7e",
                   "#c0398a", "#7fa32b", "#a0522d"];
  // Fixed colours for keys that appear in several charts, so HTTP is blue everywhere.
  const STATUS_COLORS = { "2xx": "#2e9d5b", "3xx": "#2b7a9b", "4xx": "#e39b1b", "5xx": "#d93b3b",
                          "1xx": "#7f8c8d", HTTP: "#2f6fed", DNS: "#8e44ad", TCP: "#5d6d7e",
                          UDP: "#16a2b8", "HTTP/2": "#c0398a", gRPC: "#7fa32b", TLS: "#a0522d",
                          "DNS No Error": "#b39ddb", "DNS Non-Existent Domain": "#6a1b9a",
                          "DNS Server Failure": "#d93b3b" };

  function el(name, attrs = {}, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svg(w, h) {
    // Drawn in viewBox units close to the pixels they get, so text stays at its nominal size.
    return el("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", style: `max-width:${w}px` });
  }
  function empty(target) {
    target.innerHTML = '<div class="empty">no matching entries</div>';
  }
  function color(key, i) { return STATUS_COLORS[key] || PALETTE[i % PALETTE.length]; }
  function legend(target, keys) {
    const div = document.createElement("div");
    div.className = "legend";
    keys.forEach((k, i) => {
      const span = document.createElement("span");
      span.innerHTML = `<i style="background:${color(k, i)}"></i>`;
      span.append(k);
      div.append(span);
    });
    target.append(div);
  }
  function fmt(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
    return String(n);
  }

  function donut(target, counts) {
    target.innerHTML = "";
    const entries = Object.entries(counts);
    const total = entries.reduce((a, [, v]) => a + v, 0);
    if (!total) return empty(target);
    const s = svg(220, 160);
    let angle = -Math.PI / 2;
    const cx = 80, cy = 80, r = 64, r0 = 38;
    entries.forEach(([k, v], i) => {
      const a2 = angle + (2 * Math.PI * v) / total;
      const large = a2 - angle > Math.PI ? 1 : 0;
      const p = (a, rad) => `${cx + rad * Math.cos(a)},${cy + rad * Math.sin(a)}`;
      const d = v === total
        ? `M${cx - r},${cy}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0` +
          `M${cx - r0},${cy}a${r0},${r0} 0 1,1 ${2 * r0},0a${r0},${r0} 0 1,1 ${-2 * r0},0`
        : `M${p(angle, r)}A${r},${r} 0 ${large} 1 ${p(a2, r)}L${p(a2, r0)}` +
          `A${r0},${r0} 0 ${large} 0 ${p(angle, r0)}Z`;
      const path = el("path", { d, fill: color(k, i), "fill-rule": "evenodd" });
      path.append(el("title", {}, `${k}: ${v}`));
      s.append(path);
      s.append(el("text", { x: 160, y: 30 + i * 18 }, `${k} ${Math.round((100 * v) / total)}%`));
      s.append(el("rect", { x: 148, y: 21 + i * 18, width: 9, height: 9, fill: color(k, i) }));
      angle = a2;
    });
    s.append(el("text", { x: cx, y: cy + 4, "text-anchor": "middle" }, fmt(total)));
    target.append(s);
  }

  function stacked(target, series, buckets) {
    target.innerHTML = "";
    const keys = Object.keys(series);
    if (!keys.length || !buckets.count) return empty(target);
    const n = buckets.count, W = 600, H = 180, left = 36, bottom = 22;
    const totals = Array.from({ length: n }, (_, i) => keys.reduce((a, k) => a + series[k][i], 0));
    const max = Math.max(1, ...totals);
    const s = svg(W, H);
    const bw = (W - left) / n;
    for (let t = 0; t <= 2; t++) {
      const y = H - bottom - ((H - bottom - 8) * t) / 2;
      s.append(el("line", { x1: left, x2: W, y1: y, y2: y, stroke: "#e3e6ec" }));
      s.append(el("text", { x: left - 4, y: y + 4, "text-anchor": "end", class: "axis" },
                  fmt(Math.round((max * t) / 2))));
    }
    for (let i = 0; i < n; i++) {
      let y = H - bottom;
      keys.forEach((k, j) => {
        const v = series[k][i];
        if (!v) return;
        const h = ((H - bottom - 8) * v) / max;
        y -= h;
        const r = el("rect", { x: left + i * bw + 0.5, y, width: Math.max(1, bw - 1), height: h,
                               fill: color(k, j) });
        r.append(el("title", {}, `${k}: ${v}`));
        s.append(r);
      });
    }
    const t0 = new Date(buckets.start), t1 = new Date(buckets.start + n * buckets.width_ms);
    s.append(el("text", { x: left, y: H - 6, class: "axis" }, t0.toISOString().slice(0, 19)));
    s.append(el("text", { x: W, y: H - 6, "text-anchor": "end", class: "axis" },
                t1.toISOString().slice(0, 19)));
    target.append(s);
    legend(target, keys);
  }

  function hbars(target, items, label, value, extra) {
    target.innerHTML = "";
    if (!items.length) return empty(target);
    const W = 360, row = 20, H = items.length * row + 4;
    const max = Math.max(1, ...items.map(value));
    const s = svg(W, H);
    items.forEach((it, i) => {
      const w = ((W - 170) * value(it)) / max;
      const text = String(label(it));
      const t = el("text", { x: 0, y: i * row + 14 }, text.length > 20 ? text.slice(0, 19) + "…" : text);
      t.append(el("title", {}, text));
      s.append(t);
      const r = el("rect", { x: 130, y: i * row + 4, width: Math.max(1, w), height: 13, rx: 2,
                             fill: PALETTE[0] });
      r.append(el("title", {}, extra ? extra(it) : String(value(it))));
      s.append(r);
      s.append(el("text", { x: 134 + w, y: i * row + 14 }, fmt(value(it))));
    });
    target.append(s);
  }

  function latency(target, table) {
    target.innerHTML = "";
    const protos = Object.keys(table);
    if (!protos.length) return empty(target);
    const ps = ["p50", "p90", "p95", "p99", "max"];
    const W = 360, H = 170, left = 40, bottom = 20;
    const max = Math.max(1, ...protos.map((p) => table[p].max));
    const s = svg(W, H);
    const group = (W - left) / ps.length;
    const bw = (group - 8) / protos.length;
    ps.forEach((p, i) => {
      protos.forEach((proto, j) => {
        const v = table[proto][p];
        const h = Math.max(1, ((H - bottom - 10) * Math.log1p(v)) / Math.log1p(max));
        const r = el("rect", { x: left + i * group + j * bw, y: H - bottom - h, width: bw - 1,
                               height: h, fill: color(proto, j) });
        r.append(el("title", {}, `${proto} ${p}: ${v} ms`));
        s.append(r);
        s.append(el("text", { x: left + i * group + j * bw + bw / 2, y: H - bottom - h - 2,
                              "text-anchor": "middle", class: "axis" }, fmt(v)));
      });
      s.append(el("text", { x: left + i * group + (group - 8) / 2, y: H - 5,
                            "text-anchor": "middle" }, p));
    });
    s.append(el("text", { x: 0, y: 12, class: "axis" }, "log"));
    target.append(s);
    legend(target, protos);
  }

  function serviceMap(target, edges) {
    target.innerHTML = "";
    if (!edges.length) return empty(target);
    const top = edges.slice(0, 40);
    const srcs = [...new Set(top.map((e) => e.src))];
    const dsts = [...new Set(top.map((e) => e.dst))];
    const row = 26, H = Math.max(srcs.length, dsts.length) * row + 20, W = 860;
    const ys = (list, name) => 18 + list.indexOf(name) * row + (H - 20 - list.length * row) / 2;
    const max = Math.max(...top.map((e) => e.entries));
    const s = svg(W, H);
    const x1 = 230, x2 = W - 230;
    top.forEach((e) => {
      const y1 = ys(srcs, e.src), y2 = ys(dsts, e.dst);
      const w = 1 + (7 * e.entries) / max;
      const path = el("path", {
        d: `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`,
        // Red when at least one entry in ten on this edge failed (5xx, DNS error rcode).
        fill: "none", stroke: e.errors * 10 >= e.entries ? "#d93b3b" : "#2f6fed",
        "stroke-opacity": 0.55,
        "stroke-width": w,
      });
      path.append(el("title", {}, `${e.src} → ${e.dst}: ${e.entries} entries, ${e.errors} errors`));
      s.append(path);
    });
    srcs.forEach((n) => {
      const y = ys(srcs, n);
      s.append(el("circle", { cx: x1, cy: y, r: 6, fill: "#161b26" }));
      s.append(el("text", { x: x1 - 12, y: y + 4, "text-anchor": "end" }, n));
    });
    dsts.forEach((n) => {
      const y = ys(dsts, n);
      s.append(el("circle", { cx: x2, cy: y, r: 6, fill: "#161b26" }));
      s.append(el("text", { x: x2 + 12, y: y + 4 }, n));
    });
    target.append(s);
  }

  return { donut, stacked, hbars, latency, serviceMap, fmt };
})();
