// The experiment's chart: test top-1 (left) and test loss (right) per epoch, one colour per group, the
// mean over seeds as a line and the min-max range over seeds as a band. In the style of a run's chart
// (lib/train/plot.ts: its ticks, font and escaping), pure string generation.
import { escapeXml, FONT, niceTicks } from '../train/plot.js';
import type { GroupResults, Stats } from './results.js';

// matplotlib's tab10, in order.
const PALETTE = ['#1f77b4', '#e8710a', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const fmt = (v: number) => (Math.round(v * 100) / 100).toString();

function tickLabel(v: number, step: number): string {
  return v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

interface Curve { color: string; points: { x: number; s: Stats }[] }

function panel(x: number, y: number, w: number, h: number, title: string, yLabel: string, curves: Curve[], xr: ReturnType<typeof niceTicks>): string {
  const out: string[] = [];
  const values = curves.flatMap((c) => c.points.flatMap((p) => [p.s.min, p.s.max]));
  const yr = values.length ? niceTicks(Math.min(...values), Math.max(...values), 6) : niceTicks(0, 1, 5);
  const sx = (v: number) => x + ((v - xr.lo) / (xr.hi - xr.lo)) * w;
  const sy = (v: number) => y + h - ((v - yr.lo) / (yr.hi - yr.lo)) * h;
  out.push(`<text x="${fmt(x + w / 2)}" y="${fmt(y - 12)}" text-anchor="middle" font-size="14" font-weight="bold" fill="#222">${escapeXml(title)}</text>`);
  out.push(`<rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(w)}" height="${fmt(h)}" fill="#fff"/>`);
  for (const t of yr.ticks) {
    const ty = fmt(sy(t));
    out.push(`<line x1="${fmt(x)}" y1="${ty}" x2="${fmt(x + w)}" y2="${ty}" stroke="#e3e3e3" stroke-width="1"/>`);
    out.push(`<text x="${fmt(x - 8)}" y="${ty}" dy="0.35em" text-anchor="end" font-size="11" fill="#444">${tickLabel(t, yr.step)}</text>`);
  }
  for (const t of xr.ticks) {
    const tx = fmt(sx(t));
    out.push(`<line x1="${tx}" y1="${fmt(y + h)}" x2="${tx}" y2="${fmt(y + h + 5)}" stroke="#444" stroke-width="1"/>`);
    out.push(`<text x="${tx}" y="${fmt(y + h + 19)}" text-anchor="middle" font-size="11" fill="#444">${tickLabel(t, xr.step)}</text>`);
  }
  out.push(`<path d="M${fmt(x)},${fmt(y)}V${fmt(y + h)}H${fmt(x + w)}" fill="none" stroke="#444" stroke-width="1"/>`);
  out.push(`<text x="${fmt(x + w / 2)}" y="${fmt(y + h + 38)}" text-anchor="middle" font-size="12" fill="#222">epoch</text>`);
  out.push(`<text x="${fmt(x - 52)}" y="${fmt(y + h / 2)}" text-anchor="middle" font-size="12" fill="#222" transform="rotate(-90 ${fmt(x - 52)} ${fmt(y + h / 2)})">${escapeXml(yLabel)}</text>`);
  const clip = `clip-${Math.round(x)}`;
  out.push(`<clipPath id="${clip}"><rect x="${fmt(x)}" y="${fmt(y - 2)}" width="${fmt(w)}" height="${fmt(h + 4)}"/></clipPath>`);
  out.push(`<g clip-path="url(#${clip})">`);
  for (const c of curves) {
    if (!c.points.length) continue;
    const upper = c.points.map((p) => `${fmt(sx(p.x))},${fmt(sy(p.s.max))}`);
    const lower = c.points.map((p) => `${fmt(sx(p.x))},${fmt(sy(p.s.min))}`).reverse();
    out.push(`<path class="band" d="M${[...upper, ...lower].join('L')}Z" fill="${c.color}" fill-opacity="0.18" stroke="none"/>`);
    out.push(`<path class="mean" d="M${c.points.map((p) => `${fmt(sx(p.x))},${fmt(sy(p.s.mean))}`).join('L')}" fill="none" stroke="${c.color}" stroke-width="2" stroke-linejoin="round"/>`);
    if (c.points.length <= 50) for (const p of c.points) out.push(`<circle cx="${fmt(sx(p.x))}" cy="${fmt(sy(p.s.mean))}" r="2.5" fill="${c.color}"/>`);
  }
  out.push('</g>');
  if (!values.length) out.push(`<text x="${fmt(x + w / 2)}" y="${fmt(y + h / 2)}" text-anchor="middle" font-size="12" fill="#999">no finished run yet</text>`);
  return out.join('\n');
}

/**
 * The SVG text of the chart. Epochs are counted from 1 (the value after epoch k); accuracies are drawn in
 * percent. `subtitle` says what the bands are and whether the results are partial.
 */
export function renderCurves(groups: readonly GroupResults[], opts: { title: string; subtitle?: string }): string {
  const W = 980, H = 480, top = 112, bottom = 58, marginL = 76, gap = 96, marginR = 24;
  const pw = (W - marginL - gap - marginR) / 2, ph = H - top - bottom;
  const colors = groups.map((_, i) => PALETTE[i % PALETTE.length]!);
  const pick = (f: (p: GroupResults['curve'][number]) => Stats, scale: number): Curve[] =>
    groups.map((g, i) => ({ color: colors[i]!, points: g.curve.map((p) => ({ x: p.epoch, s: scaled(f(p), scale) })) }));
  const epochs = groups.flatMap((g) => g.curve.map((p) => p.epoch));
  const e0 = epochs.length ? Math.min(...epochs) : 1, e1 = epochs.length ? Math.max(...epochs) : 2;
  let xr = niceTicks(e0, Math.max(e1, e0 + 1), Math.max(2, Math.min(10, Math.floor(pw / 60))));
  if (xr.step < 1) xr = niceTicks(e0, Math.max(e1, e0 + 1), Math.max(1, e1 - e0));
  const legend: string[] = [];
  let lx = marginL - 50;
  groups.forEach((g, i) => {
    legend.push(`<rect x="${fmt(lx)}" y="${top - 41}" width="24" height="10" fill="${colors[i]}" fill-opacity="0.18"/>`);
    legend.push(`<line x1="${fmt(lx)}" y1="${top - 36}" x2="${fmt(lx + 24)}" y2="${top - 36}" stroke="${colors[i]}" stroke-width="2.5"/>`);
    const label = `${g.group} (${g.seedsFinished.length} of ${g.seedsPlanned.length} seeds)`;
    legend.push(`<text x="${fmt(lx + 30)}" y="${top - 36}" dy="0.35em" font-size="12" fill="#222">${escapeXml(label)}</text>`);
    lx += 30 + label.length * 6.8 + 24;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT}>`,
    `<title>${escapeXml(opts.title)}</title>`,
    '<rect width="100%" height="100%" fill="#fafafa"/>',
    `<text x="${marginL - 50}" y="28" font-size="17" font-weight="bold" fill="#111">${escapeXml(opts.title)}</text>`,
    opts.subtitle ? `<text x="${marginL - 50}" y="48" font-size="12" fill="#555">${escapeXml(opts.subtitle)}</text>` : '',
    '<g class="legend">', ...legend, '</g>',
    panel(marginL, top, pw, ph, 'Test top-1', 'top-1 accuracy (%)', pick((p) => p.top1, 100), xr),
    panel(marginL + pw + gap, top, pw, ph, 'Test loss', 'cross-entropy loss', pick((p) => p.loss, 1), xr),
    '</svg>',
    '',
  ].filter((l) => l !== '').join('\n') + '\n';
}

function scaled(s: Stats, k: number): Stats {
  return { n: s.n, mean: s.mean * k, std: s.std === null ? null : s.std * k, min: s.min * k, max: s.max * k };
}
