// An SVG chart of a run: loss (left panel) and accuracy (right panel) per epoch (counted from 1), train,
// validation (when there is one) and test curves,
// with ticks, grid, axis labels, a legend and a title; the best test accuracy is marked. Pure string
// generation, no dependencies; writePlot replaces the file atomically, so a viewer never sees half a file.
import { writeFileAtomicSync } from './checkpoint.js';
import type { EpochPoint } from './metrics-log.js';

export interface PlotOptions {
  title?: string;
  /** A second line under the title (model, dataset, schedule, ...). */
  subtitle?: string;
  width?: number;
  height?: number;
  /**
   * The legend's names of the series, e.g. train: 'train (label smoothing 0.1)' when the training loss is
   * against smoothed or mixed targets while the test loss is plain cross-entropy.
   */
  labels?: Partial<Record<keyof typeof COLORS, string>>;
}

const COLORS = { train: '#1f77b4', val: '#2ca02c', test: '#e8710a' }; // matplotlib's tab:blue, tab:green, a deeper tab:orange
export const FONT = "font-family=\"'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif\"";

/** Escapes text for SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Round numbers for axis ticks covering [lo, hi]: about `target` of them, steps of 1, 2 or 5 x 10^k. */
export function niceTicks(lo: number, hi: number, target = 5): { lo: number; hi: number; step: number; ticks: number[] } {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new RangeError(`niceTicks: expected bounds to be finite, but received ${lo}, ${hi}`);
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  // Of the round steps near (hi - lo) / target, the one whose interval count is closest to target,
  // counting the axis it wastes beyond the data as a penalty (the larger step on a tie).
  const goal = Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10((hi - lo) / goal));
  const score = (s: number) => {
    const a = Math.floor(lo / s + 1e-9), b = Math.ceil(hi / s - 1e-9);
    return Math.abs(b - a - goal) + 2 * (((b - a) * s) / (hi - lo) - 1);
  };
  let step = mag;
  for (const s of [0.5, 1, 2, 5, 10, 20].map((m) => Number((m * mag).toPrecision(12)))) if (score(s) <= score(step) + 1e-9) step = s;
  const l = round(Math.floor(lo / step + 1e-9) * step, step);
  const h = round(Math.ceil(hi / step - 1e-9) * step, step);
  const ticks: number[] = [];
  for (let i = 0; l + i * step <= h + step * 1e-9; i++) ticks.push(round(l + i * step, step));
  return { lo: l, hi: h, step, ticks };
}

/** Removes floating-point noise: the value to the precision of the step. */
function round(v: number, step: number): number {
  const d = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(d));
}

function tickLabel(v: number, step: number): string {
  const d = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(d);
}

interface Series {
  label: keyof typeof COLORS;
  points: [number, number][];
  /** Break the line where epochs are missing. */
  segments: [number, number][][];
}

function series(history: readonly EpochPoint[], label: keyof typeof COLORS, pick: (p: EpochPoint) => number | undefined, scale = 1): Series {
  const points: [number, number][] = [];
  const segments: [number, number][][] = [];
  let cur: [number, number][] = [];
  for (const p of history) {
    const v = pick(p);
    if (v === undefined || !Number.isFinite(v)) {
      if (cur.length) segments.push(cur);
      cur = [];
      continue;
    }
    points.push([p.epoch, v * scale]);
    cur.push([p.epoch, v * scale]);
  }
  if (cur.length) segments.push(cur);
  return { label, points, segments };
}

interface Panel {
  x: number;
  y: number;
  w: number;
  h: number;
  title: string;
  yLabel: string;
  series: Series[];
  /** Fixed y bounds to clip to (accuracy: [0, 100]). */
  clamp?: [number, number];
  /** Start the y axis at 0 when all values are positive (loss). */
  fromZero?: boolean;
  best?: 'max';
}

const fmt = (v: number) => (Math.round(v * 100) / 100).toString();

function renderPanel(p: Panel, xr: { lo: number; hi: number; ticks: number[]; step: number }): string {
  const out: string[] = [];
  const all = p.series.flatMap((s) => s.points.map((q) => q[1]));
  let lo = all.length ? Math.min(...all) : 0;
  let hi = all.length ? Math.max(...all) : (p.clamp?.[1] ?? 1);
  if (p.fromZero && lo >= 0) lo = 0;
  const yr0 = niceTicks(lo, hi, 5);
  let yr = yr0;
  if (p.clamp) {
    const l = Math.max(p.clamp[0], yr0.lo), h = Math.min(p.clamp[1], yr0.hi);
    yr = { ...yr0, lo: l, hi: h, ticks: yr0.ticks.filter((t) => t >= l - 1e-9 && t <= h + 1e-9) };
  }
  const sx = (v: number) => p.x + ((v - xr.lo) / (xr.hi - xr.lo)) * p.w;
  const sy = (v: number) => p.y + p.h - ((v - yr.lo) / (yr.hi - yr.lo)) * p.h;

  out.push(`<g class="panel">`);
  out.push(`<text x="${fmt(p.x + p.w / 2)}" y="${fmt(p.y - 12)}" text-anchor="middle" font-size="14" font-weight="bold" fill="#222">${escapeXml(p.title)}</text>`);
  out.push(`<rect x="${fmt(p.x)}" y="${fmt(p.y)}" width="${fmt(p.w)}" height="${fmt(p.h)}" fill="#fff" stroke="none"/>`);
  // Grid and ticks.
  for (const t of yr.ticks) {
    const y = fmt(sy(t));
    out.push(`<line x1="${fmt(p.x)}" y1="${y}" x2="${fmt(p.x + p.w)}" y2="${y}" stroke="#e3e3e3" stroke-width="1"/>`);
    out.push(`<line x1="${fmt(p.x - 5)}" y1="${y}" x2="${fmt(p.x)}" y2="${y}" stroke="#444" stroke-width="1"/>`);
    out.push(`<text x="${fmt(p.x - 8)}" y="${y}" dy="0.35em" text-anchor="end" font-size="11" fill="#444">${tickLabel(t, yr.step)}</text>`);
  }
  for (const t of xr.ticks) {
    const x = fmt(sx(t));
    out.push(`<line x1="${x}" y1="${fmt(p.y)}" x2="${x}" y2="${fmt(p.y + p.h)}" stroke="#f0f0f0" stroke-width="1"/>`);
    out.push(`<line x1="${x}" y1="${fmt(p.y + p.h)}" x2="${x}" y2="${fmt(p.y + p.h + 5)}" stroke="#444" stroke-width="1"/>`);
    out.push(`<text x="${x}" y="${fmt(p.y + p.h + 19)}" text-anchor="middle" font-size="11" fill="#444">${tickLabel(t, xr.step)}</text>`);
  }
  // Axes.
  out.push(`<path d="M${fmt(p.x)},${fmt(p.y)}V${fmt(p.y + p.h)}H${fmt(p.x + p.w)}" fill="none" stroke="#444" stroke-width="1"/>`);
  out.push(`<text x="${fmt(p.x + p.w / 2)}" y="${fmt(p.y + p.h + 38)}" text-anchor="middle" font-size="12" fill="#222">epoch</text>`);
  const ly = p.y + p.h / 2;
  out.push(`<text x="${fmt(p.x - 48)}" y="${fmt(ly)}" text-anchor="middle" font-size="12" fill="#222" transform="rotate(-90 ${fmt(p.x - 48)} ${fmt(ly)})">${escapeXml(p.yLabel)}</text>`);
  // Curves, clipped to the plot area.
  const clipId = `clip-${Math.round(p.x)}-${Math.round(p.y)}`;
  out.push(`<clipPath id="${clipId}"><rect x="${fmt(p.x - 4)}" y="${fmt(p.y - 4)}" width="${fmt(p.w + 8)}" height="${fmt(p.h + 8)}"/></clipPath>`);
  out.push(`<g clip-path="url(#${clipId})">`);
  const markers = Math.max(...p.series.map((s) => s.points.length), 0) <= 50;
  for (const s of p.series) {
    const color = COLORS[s.label];
    for (const seg of s.segments) {
      if (seg.length > 1) {
        const d = seg.map(([x, y], i) => `${i ? 'L' : 'M'}${fmt(sx(x))},${fmt(sy(y))}`).join('');
        out.push(`<path class="${s.label}" d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>`);
      }
    }
    if (markers || s.points.length === 1) {
      for (const [x, y] of s.points) out.push(`<circle cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="2.8" fill="${color}"/>`);
    }
  }
  out.push(`</g>`);
  // The best test value.
  const test = p.series.find((s) => s.label === 'test');
  if (p.best === 'max' && test && test.points.length) {
    const [bx, by] = test.points.reduce((a, b) => (b[1] > a[1] ? b : a));
    const cx = sx(bx), cy = sy(by);
    // The note goes in the bottom-right corner, where rising accuracy curves rarely are.
    const text = `best test ${by.toFixed(2)}% at epoch ${bx}`;
    out.push(`<circle cx="${fmt(cx)}" cy="${fmt(cy)}" r="5" fill="none" stroke="${COLORS.test}" stroke-width="1.5"/>`);
    out.push(`<text x="${fmt(p.x + p.w - 8)}" y="${fmt(p.y + p.h - 10)}" text-anchor="end" font-size="11" fill="${COLORS.test}" stroke="#fff" stroke-width="3" paint-order="stroke">${escapeXml(text)}</text>`);
  }
  if (!all.length) {
    out.push(`<text x="${fmt(p.x + p.w / 2)}" y="${fmt(p.y + p.h / 2)}" text-anchor="middle" font-size="12" fill="#999">no data yet</text>`);
  }
  out.push(`</g>`);
  return out.join('\n');
}

/**
 * The SVG text of a loss / accuracy chart. Accuracies in `history` are fractions and are drawn in percent;
 * missing or non-finite values leave gaps.
 */
export function renderPlot(history: readonly EpochPoint[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 960;
  const H = opts.height ?? 440;
  const title = opts.title ?? 'Training';
  const top = opts.subtitle ? 96 : 80;
  const marginL = 70, gap = 90, marginR = 24, bottom = 56;
  const pw = (W - marginL - gap - marginR) / 2;
  const ph = H - top - bottom;
  const epochs = history.map((p) => p.epoch);
  // Epochs are integers: a range of at least one epoch, not below 0 unless the data is, integer ticks.
  let e0 = epochs.length ? Math.min(...epochs) : 0;
  let e1 = epochs.length ? Math.max(...epochs) : 1;
  if (e1 === e0) [e0, e1] = e0 >= 0 && e0 < 1 ? [e0, e0 + 1] : [e0 - 1, e1 + 1];
  const xr = niceTicks(e0, e1, Math.max(2, Math.min(10, Math.floor(pw / 60))));
  if (xr.step < 1) Object.assign(xr, niceTicks(e0, e1, Math.max(1, Math.round(e1 - e0))));

  const loss: Panel = {
    x: marginL, y: top, w: pw, h: ph, title: 'Loss', yLabel: 'cross-entropy loss', fromZero: true,
    series: [series(history, 'train', (p) => p.trainLoss), series(history, 'val', (p) => p.valLoss), series(history, 'test', (p) => p.testLoss)],
  };
  const acc: Panel = {
    x: marginL + pw + gap, y: top, w: pw, h: ph, title: 'Accuracy', yLabel: 'top-1 accuracy (%)', clamp: [0, 100], best: 'max',
    series: [series(history, 'train', (p) => p.trainAcc, 100), series(history, 'val', (p) => p.valAcc, 100), series(history, 'test', (p) => p.testAcc, 100)],
  };
  const hasVal = history.some((p) => p.valLoss !== undefined || p.valAcc !== undefined);

  // The legend, top right: a line sample and a label per series.
  const legend: string[] = [];
  let lx = W - marginR;
  const names = { train: 'train', val: 'validation', test: 'test', ...opts.labels };
  for (const label of hasVal ? (['test', 'val', 'train'] as const) : (['test', 'train'] as const)) {
    const name = names[label];
    const tw = name.length * 7 + 4;
    lx -= tw;
    legend.push(`<text x="${fmt(lx)}" y="${fmt(top - 44)}" dy="0.35em" font-size="12" fill="#222">${escapeXml(name)}</text>`);
    lx -= 30;
    legend.push(`<line x1="${fmt(lx)}" y1="${fmt(top - 44)}" x2="${fmt(lx + 24)}" y2="${fmt(top - 44)}" stroke="${COLORS[label]}" stroke-width="2.5"/>`);
    legend.push(`<circle cx="${fmt(lx + 12)}" cy="${fmt(top - 44)}" r="2.8" fill="${COLORS[label]}"/>`);
    lx -= 18;
  }

  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT}>`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="100%" height="100%" fill="#fafafa"/>`,
    `<text x="${marginL - 50}" y="28" font-size="17" font-weight="bold" fill="#111">${escapeXml(title)}</text>`,
    opts.subtitle ? `<text x="${marginL - 50}" y="48" font-size="12" fill="#555">${escapeXml(opts.subtitle)}</text>` : '',
    `<g class="legend">`,
    ...legend,
    `</g>`,
    renderPanel(loss, xr),
    renderPanel(acc, xr),
    `</svg>`,
    '',
  ].filter((l) => l !== '').join('\n') + '\n';
}

/** Writes the chart to `file` atomically (write it after every epoch). */
export function writePlot(file: string, history: readonly EpochPoint[], opts: PlotOptions = {}): void {
  writeFileAtomicSync(file, renderPlot(history, opts));
}
