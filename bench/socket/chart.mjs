// An SVG bar chart of a socket benchmark report: one group per figure, one bar per balancer,
// heights relative to HAProxy (= 1, the dashed line), each bar labelled with its value.
// Plain SVG so that a Debian tool (rsvg-convert) makes the PNG: no npm dependency.

const COLORS = { fulcrum: '#d9480f', haproxy: '#1c7ed6', nginx: '#2f9e44', 'node-pipe': '#868e96' };
const color = (peer) => COLORS[peer] ?? (peer.startsWith('fulcrum-') ? '#f08c00' : '#999');
const FIGURES = [
  { key: 'rps', label: 'requests/s (keep-alive)', fmt: (v) => `${(v / 1000).toFixed(1)}k` },
  { key: 'cps', label: 'new connections/s', fmt: (v) => `${(v / 1000).toFixed(1)}k` },
  {
    key: 'rpsP99Ms',
    label: 'p99, keep-alive (lower is better)',
    fmt: (v) => `${v.toFixed(1)}ms`,
    lower: true,
  },
  {
    key: 'cpsP99Ms',
    label: 'p99, new connections (lower is better)',
    fmt: (v) => `${v.toFixed(1)}ms`,
    lower: true,
  },
  { key: 'iperf1Gbps', label: 'throughput, 1 stream', fmt: (v) => `${v.toFixed(1)}G` },
  { key: 'iperf8Gbps', label: 'throughput, 8 streams', fmt: (v) => `${v.toFixed(1)}G` },
];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function chart(report) {
  const peers = Object.keys(report.summary);
  const base = report.summary.haproxy ?? report.summary[peers[0]];
  const groupW = 150;
  const barW = Math.min(28, (groupW - 30) / peers.length);
  const left = 60;
  const top = 70;
  const plotH = 300;
  const width = left + FIGURES.length * groupW + 20;
  const height = top + plotH + 110;
  const rel = (f, s) => (f.lower ? base[f.key] / s[f.key] : s[f.key] / base[f.key]);
  // Capped so that one outlier (a p99 ten times better) does not flatten the rest; a capped
  // bar ends in an arrow and keeps its value label.
  const CAP = 3;
  const rels = FIGURES.flatMap((f) => peers.map((p) => rel(f, report.summary[p]))).filter(Number.isFinite);
  const max = Math.min(CAP, Math.max(1.2, ...rels));
  const y = (v) => top + plotH - (v / max) * plotH;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="11">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(
    `<text x="${left}" y="24" font-size="15" font-weight="bold">Fulcrum socket dataplane vs HAProxy, nginx stream, Node pipe()</text>`,
  );
  const m = report.machine;
  out.push(
    `<text x="${left}" y="44" fill="#555">${esc(`${m.cores} cores, ${report.params.rounds}×${report.params.seconds} s, medians; relative to HAProxy (1.0); ${report.date.slice(0, 16)}Z, load ${m.loadavgStart[0].toFixed(1)}`)}</text>`,
  );
  for (let t = 0; t <= max + 1e-9; t += max > 3 ? 1 : 0.5) {
    out.push(`<line x1="${left}" x2="${width - 20}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/>`);
    out.push(`<text x="${left - 8}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t.toFixed(1)}</text>`);
  }
  out.push(
    `<line x1="${left}" x2="${width - 20}" y1="${y(1)}" y2="${y(1)}" stroke="#1c7ed6" stroke-dasharray="4 3"/>`,
  );
  FIGURES.forEach((f, gi) => {
    const gx = left + gi * groupW + 15;
    peers.forEach((p, pi) => {
      const s = report.summary[p];
      const actual = rel(f, s);
      if (!Number.isFinite(actual)) return;
      const v = Math.min(actual, max);
      const x = gx + pi * (barW + 4);
      out.push(
        `<rect x="${x}" y="${y(v)}" width="${barW}" height="${top + plotH - y(v)}" fill="${color(p)}"/>`,
      );
      if (actual > max)
        out.push(
          `<path d="M${x} ${y(v)} L${x + barW / 2} ${y(v) - 8} L${x + barW} ${y(v)} Z" fill="${color(p)}"/>`,
        );
      const ly = y(v) - (actual > max ? 12 : 4);
      out.push(
        `<text x="${x + barW / 2}" y="${ly}" text-anchor="middle" font-size="9" transform="rotate(-45 ${x + barW / 2} ${ly})">${esc(f.fmt(s[f.key]))}</text>`,
      );
    });
    out.push(
      `<text x="${gx + ((barW + 4) * peers.length) / 2}" y="${top + plotH + 18}" text-anchor="middle" font-size="10">${esc(f.label.split(' (')[0])}</text>`,
    );
    if (f.label.includes('('))
      out.push(
        `<text x="${gx + ((barW + 4) * peers.length) / 2}" y="${top + plotH + 31}" text-anchor="middle" font-size="9" fill="#555">(${esc(f.label.split(' (')[1])}</text>`,
      );
  });
  peers.forEach((p, i) => {
    const x = left + i * 130;
    out.push(`<rect x="${x}" y="${height - 40}" width="14" height="14" fill="${color(p)}"/>`);
    out.push(`<text x="${x + 20}" y="${height - 29}">${esc(p)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
