// Evidence as pictures: metric series (uPlot), blocking trees, wait profiles and interface rates.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { duration, html, localText, number, parseTime, utcText, withUnit } from "./lib.js";

export function Picture({ pic }) {
  if (pic.kind === "series") return html`<${SeriesChart} pic=${pic} />`;
  if (pic.kind === "blocking_tree") return html`<${BlockingTree} pic=${pic} />`;
  if (pic.kind === "wait_profile") return html`<${WaitBars} pic=${pic} />`;
  if (pic.kind === "interfaces") return html`<${InterfaceRates} pic=${pic} />`;
  return null;
}

// --- metric series ---------------------------------------------------------------------------

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const epoch = (iso) => parseTime(iso).getTime() / 1000;

// The chart's series and their data: the value, and only what this finding has of baseline band,
// forecast line and threshold.
function chartParts(pic) {
  const xs = pic.points.map(([t]) => epoch(t));
  const ys = pic.points.map(([, v]) => v);
  const f = pic.forecast;
  if (f) xs.push(epoch(f.to_ts));
  const fmt = (u, v) => withUnit(v, pic.unit);
  const hidden = { points: { show: false }, value: fmt };
  const data = [xs, [...ys, ...(f ? [null] : [])]];
  const series = [
    { value: (u, v) => (v == null ? "—" : localText(new Date(v * 1000))) },
    { label: "value", stroke: css("--accent"), width: 2, points: { show: pic.points.length < 60, size: 4 }, value: fmt },
  ];
  const bands = [];
  if (pic.baseline) {
    const until = epoch(pic.baseline.until);
    data.push(xs.map((x) => (x < until ? pic.baseline.low : null)), xs.map((x) => (x < until ? pic.baseline.high : null)));
    series.push({ label: "baseline low", stroke: "transparent", class: "band-edge", ...hidden });
    series.push({ label: "baseline high", stroke: "transparent", class: "band-edge", ...hidden });
    bands.push({ series: [series.length - 1, series.length - 2], fill: css("--band") });
  }
  if (f) {
    const line = xs.map(() => null);
    line[ys.length - 1] = f.from_value;
    line[xs.length - 1] = f.to_value;
    data.push(line);
    series.push({ label: "forecast", stroke: css("--danger"), width: 2, dash: [6, 4], spanGaps: true, ...hidden });
  }
  if (pic.threshold != null) {
    data.push(xs.map(() => pic.threshold));
    series.push({ label: "threshold", stroke: css("--danger"), width: 1, dash: [2, 3], ...hidden });
  }
  return { data, series, bands };
}

// A vertical dashed line at the detected step, labelled with the levels before and after.
function stepPlugin(pic) {
  return {
    hooks: {
      draw: [
        (u) => {
          if (!pic.step) return;
          const x = Math.round(u.valToPos(epoch(pic.step.at), "x", true));
          const { ctx } = u;
          const { top, height } = u.bbox;
          ctx.save();
          ctx.strokeStyle = css("--warn");
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = css("--warn");
          ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
          const label = `step ${withUnit(pic.step.before, pic.unit)} → ${withUnit(pic.step.after, pic.unit)}`;
          const w = ctx.measureText(label).width;
          const right = x + 4 * devicePixelRatio + w < u.bbox.left + u.bbox.width;
          ctx.textAlign = right ? "left" : "right";
          // beside the line where the series is not: low for a step up, high for a step down
          const y = pic.step.after > pic.step.before ? top + height - 6 * devicePixelRatio : top + 12 * devicePixelRatio;
          ctx.fillText(label, x + (right ? 5 : -5) * devicePixelRatio, y);
          ctx.restore();
        },
      ],
    },
  };
}

function chartOptions(pic, width, parts) {
  const fg = css("--muted");
  const grid = css("--grid");
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const yMax = pic.threshold != null ? Math.max(pic.threshold, ...pic.points.map((p) => p[1])) : null;
  return {
    width,
    height: 180,
    cursor: { drag: { x: false, y: false } },
    legend: { show: true, live: true },
    scales: {
      x: { time: true },
      y: yMax != null ? { range: (u, min) => [Math.min(0, min), yMax * 1.05] } : {},
    },
    axes: [
      { ...axis, space: 60 },
      { ...axis, size: 52, values: (u, vals) => vals.map((v) => withUnit(v, pic.unit)) },
    ],
    series: parts.series,
    bands: parts.bands,
    plugins: [stepPlugin(pic)],
  };
}

export function SeriesChart({ pic }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    let plot = null;
    const build = () => {
      plot?.destroy();
      const parts = chartParts(pic);
      plot = new uPlot(chartOptions(pic, Math.max(240, el.clientWidth), parts), parts.data, el);
    };
    build();
    const resize = new ResizeObserver(() => plot && plot.setSize({ width: Math.max(240, el.clientWidth), height: 180 }));
    resize.observe(el);
    const scheme = matchMedia("(prefers-color-scheme: dark)");
    scheme.addEventListener("change", build);
    return () => {
      resize.disconnect();
      scheme.removeEventListener("change", build);
      plot?.destroy();
    };
  }, [pic]);
  const f = pic.forecast;
  const eta = f?.eta ? parseTime(f.eta) : null;
  return html`<figure class="picture series" data-testid="evidence-chart" data-kind="series"
      data-forecast=${f ? "true" : "false"} data-step=${pic.step ? "true" : "false"}
      data-band=${pic.baseline ? "true" : "false"}>
    <figcaption>
      <span class="series-label" title=${pic.label}>${pic.label || pic.entity}</span>
      ${pic.evidence_ref && html`<span class="ref">${pic.evidence_ref}</span>`}
    </figcaption>
    <div class="chart" ref=${box}></div>
    <p class="chart-notes">
      ${pic.baseline && html`<span><i class="swatch band"></i>baseline ${withUnit(pic.baseline.low, pic.unit)} – ${withUnit(pic.baseline.high, pic.unit)} (median ${withUnit(pic.baseline.median, pic.unit)})</span>`}
      ${pic.step && html`<span><i class="swatch step"></i>step at <time title=${"UTC: " + utcText(parseTime(pic.step.at))}>${localText(parseTime(pic.step.at))}</time></span>`}
      ${f && html`<span><i class="swatch forecast"></i>forecast reaches ${withUnit(f.threshold, pic.unit)} at <time title=${eta ? "UTC: " + utcText(eta) : ""}>${eta ? localText(eta) : "—"}</time></span>`}
      ${pic.threshold != null && !f && html`<span><i class="swatch threshold"></i>limit ${withUnit(pic.threshold, pic.unit)}</span>`}
    </p>
  </figure>`;
}

// --- blocking tree ---------------------------------------------------------------------------

function TreeNode({ node, max, head = false }) {
  const pct = max > 0 ? Math.max(2, Math.round((node.wait_ms / max) * 100)) : 0;
  return html`<li data-session=${node.session} class=${head ? "head" : ""}>
    <div class="node">
      <span class=${"session" + (head ? " head" : "")}>${head ? "head blocker " : ""}session ${node.session}</span>
      ${node.who && html`<span class="who">${node.who}</span>`}
      ${node.program && html`<span class="muted">${node.program}</span>`}
      ${node.state && html`<span class="state">${node.state}</span>`}
      ${node.cycle_to != null && html`<span class="badge critical">↺ waits for session ${node.cycle_to} (cycle)</span>`}
      ${!head && html`<span class="wait" title=${node.wait_resource || ""}>
        <span class="wait-bar"><i style=${`width:${pct}%`}></i></span>
        ${node.wait_type || "waiting"} · ${duration(node.wait_ms)}
      </span>`}
      ${node.sql && html`<code class="sql" title=${node.sql}>${node.sql}</code>`}
    </div>
    ${node.children?.length > 0 && html`<ul>${node.children.map((c) => html`<${TreeNode} key=${c.session} node=${c} max=${max} />`)}</ul>`}
  </li>`;
}

export function BlockingTree({ pic }) {
  return html`<figure class="picture tree" data-testid="blocking-tree" data-head=${pic.head.session}>
    <figcaption>
      ${pic.deadlock ? "Deadlock" : "Blocking chain"} on ${pic.entity}: ${pic.blocked} blocked, depth ${pic.depth},
      longest wait ${duration(pic.max_wait_ms)}
      ${pic.evidence_ref && html`<span class="ref">${pic.evidence_ref}</span>`}
    </figcaption>
    <ul class="tree-root"><${TreeNode} node=${pic.head} max=${pic.max_wait_ms} head=${true} /></ul>
  </figure>`;
}

// --- wait profile ----------------------------------------------------------------------------

export function WaitBars({ pic }) {
  const top = Math.max(...pic.bars.map((b) => b.ms), 1);
  return html`<figure class="picture bars" data-testid="evidence-chart" data-kind="wait_profile">
    <figcaption>Wait time by cause on ${pic.entity}: ${duration(pic.total_ms)}
      ${pic.benign_ms > 0 && html` <span class="muted">(${duration(pic.benign_ms)} benign, not shown)</span>`}
      ${pic.evidence_ref && html`<span class="ref">${pic.evidence_ref}</span>`}</figcaption>
    <table class="bar-table">
      ${pic.bars.map((b) => html`<tr key=${b.cause}>
        <th scope="row">${b.cause}</th>
        <td class="bar-cell"><span class="bar"><i style=${`width:${Math.max(1, (b.ms / top) * 100)}%`}></i></span></td>
        <td class="num">${duration(b.ms)}</td>
        <td class="num">${b.share_pct.toFixed(1)}%</td>
        <td class="muted types">${b.types.join(", ")}</td>
      </tr>`)}
    </table>
  </figure>`;
}

// --- interface rates -------------------------------------------------------------------------

function Meter({ value, label, warn = 90 }) {
  if (value == null) return html`<span class="muted">—</span>`;
  const cls = value >= warn ? "meter hot" : "meter";
  return html`<span class=${cls} title=${`${label} ${value.toFixed(1)}%`}><i style=${`width:${Math.min(100, value)}%`}></i><b>${value.toFixed(0)}%</b></span>`;
}

function rate(v) {
  if (v == null) return html`<span class="muted">—</span>`;
  return html`<span class=${v > 0 ? "hot-text" : ""}>${number(v, 1)}/s</span>`;
}

export function InterfaceRates({ pic }) {
  return html`<figure class="picture interfaces" data-testid="evidence-chart" data-kind="interfaces">
    <figcaption>Interfaces of ${pic.entity} (rates between two polls)
      ${pic.evidence_ref && html`<span class="ref">${pic.evidence_ref}</span>`}</figcaption>
    <div class="scroll"><table class="if-table">
      <thead><tr><th>interface</th><th>state</th><th>in</th><th>out</th><th>in errors</th><th>out errors</th><th>discards</th></tr></thead>
      <tbody>
      ${pic.interfaces.map((i) => html`<tr key=${i.name} class=${i.problems.length ? "problem" : ""}>
        <th scope="row">${i.name}${i.speed_bps ? html` <span class="muted">${number(i.speed_bps, 0)}bit/s</span>` : ""}</th>
        <td><span class=${"badge " + (i.state === "up" ? "ok" : i.state === "admin_down" ? "muted" : "critical")}>${i.state.replace("_", " ")}</span></td>
        <td><${Meter} value=${i.in_util_pct} label="in" /></td>
        <td><${Meter} value=${i.out_util_pct} label="out" /></td>
        <td class="num">${rate(i.in_error_rate)}</td>
        <td class="num">${rate(i.out_error_rate)}</td>
        <td class="num">${rate(i.discard_rate)}</td>
      </tr>`)}
      </tbody>
    </table></div>
  </figure>`;
}
