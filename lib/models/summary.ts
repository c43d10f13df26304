// Pure renderers behind `crunet summary`: one model's per-stage table in the style of the paper's Table 1,
// several models side by side (--compare), a one-row-per-model table for the README, and the --json object.

import type { Section } from './network.js';
import type { ResolvedOptions } from './options.js';

/** One stage of a model with its counts (Model.stages()). */
export interface StageStats extends Omit<Section, 'nodes'> {
  params: number;
  macs: number;
}

/** What the renderers read of a model (lib/models/model.ts's Model), named here so this file need not import it. */
export interface SummarizedModel {
  readonly name: string;
  readonly description: string;
  readonly options: Pick<ResolvedOptions, 'channels' | 'inputSize' | 'classes'>;
  readonly sections: readonly Pick<Section, 'name'>[];
  readonly reported?: { top1Error: number };
  parameterCount(): number;
  stateSize(): number;
  macs(): number;
  stages(): StageStats[];
}

export interface SummaryJSON {
  model: string;
  params: number;
  macs: number;
  stages: { name: string; output: number[]; structure: string[]; units: number; sharedSets: number; params: number; macs: number }[];
}

export interface TableOptions {
  /** 'text' (aligned columns, default) or 'markdown' (multi-line cells joined with <br>). */
  format?: 'text' | 'markdown';
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Multiply-adds in G (two decimals, as the paper prints them) from 1 G up, else in M. */
export function formatMacs(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : `${(n / 1e6).toFixed(1)} M`;
}

function formatShape(s: readonly number[]): string {
  return s.length === 3 ? `${s[1]}x${s[2]}x${s[0]}` : s.join('x');
}

/** MiB of float32 weights plus BN running statistics: what the paper's "MB" column means. */
function sizeMiB(m: SummarizedModel): string {
  return `${((m.stateSize() * 4) / 2 ** 20).toFixed(1)}`;
}

function unitCell(s: StageStats): string[] {
  if (!s.prefix) return s.structure;
  const sets = s.sharedSets ? `, ${s.sharedSets} shared set${s.sharedSets === 1 ? '' : 's'}` : '';
  return [...s.structure, `x${s.units}${sets}`];
}

/** Renders rows of multi-line cells: aligned text, or a markdown table. */
function render(header: string[], rows: string[][][], o: TableOptions, rightAligned: (col: number) => boolean): string {
  if (o.format === 'markdown') {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    const rule = header.map((_, i) => (rightAligned(i) ? '---:' : '---'));
    return [line(header), line(rule), ...rows.map((r) => line(r.map((c) => c.join('<br>'))))].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.max(0, ...r[i]!.map((l) => l.length)))));
  const pad = (s: string, i: number) => (rightAligned(i) ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const out = [header.map(pad).join('  ').trimEnd(), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) {
    const height = Math.max(...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(r.map((c, i) => pad(c[k] ?? '', i)).join('  ').trimEnd());
  }
  return out.join('\n');
}

/** One model, one row per stage: output size, unit structure, units, shared sets, parameters, multiply-adds. */
export function summaryTable(m: SummarizedModel, o: TableOptions = {}): string {
  const stages = m.stages();
  const rows = stages.map((s) => [
    [s.name], [formatShape(s.output)], s.structure, [s.prefix ? String(s.units) : '-'], [s.sharedSets ? String(s.sharedSets) : '-'],
    [formatCount(s.params)], [formatMacs(s.macs)],
  ]);
  rows.push([['total'], [''], [''], [''], [''], [formatCount(m.parameterCount())], [formatMacs(m.macs())]]);
  const input = `${m.options.channels}x${m.options.inputSize}x${m.options.inputSize}`;
  const title = [
    `${m.name}: ${m.description}`,
    `input ${input}, ${m.options.classes} classes; ${formatCount(m.parameterCount())} parameters (${sizeMiB(m)} MiB with BN statistics), ` +
      `${formatMacs(m.macs())} multiply-adds per image (convolutions and fc; BN, ReLU, pooling and additions count 0)`,
  ].join('\n');
  const table = render(['stage', 'output', 'unit', 'units', 'shared sets', 'params', 'MACs'], rows, o, (i) => i >= 3);
  return `${title}\n\n${table}`;
}

/** The object `crunet summary <model> --json` prints. */
export function summaryJSON(m: SummarizedModel): SummaryJSON {
  return {
    model: m.name,
    params: m.parameterCount(),
    macs: m.macs(),
    stages: m.stages().map((s) => ({
      name: s.name, output: [...s.output], structure: [...s.structure], units: s.units, sharedSets: s.sharedSets, params: s.params, macs: s.macs,
    })),
  };
}

function reportedError(m: SummarizedModel): string {
  return m.reported ? `${m.reported.top1Error.toFixed(1)} %` : '-';
}

/** Models side by side, one column each, rows per stage (as the paper's Table 1) then the totals. */
export function compareTable(models: readonly SummarizedModel[], o: TableOptions = {}): string {
  const per = models.map((m) => new Map(m.stages().map((s) => [s.name, s])));
  const names = [...new Set(models.flatMap((m) => m.sections.map((s) => s.name)))];
  names.sort((a, b) => (a === 'fc' ? 1 : b === 'fc' ? -1 : Number(a.slice(4)) - Number(b.slice(4))));
  const rows: string[][][] = names.map((stage) => [
    [stage],
    ...per.map((p) => {
      const s = p.get(stage);
      return s ? [formatShape(s.output), ...unitCell(s)] : ['-'];
    }),
  ]);
  const total = (label: string, f: (m: SummarizedModel) => string) => [[label], ...models.map((m) => [f(m)])];
  rows.push(
    total('params', (m) => formatCount(m.parameterCount())),
    total('MACs', (m) => formatMacs(m.macs())),
    total('size (MiB)', sizeMiB),
    total('top-1 err (paper)', reportedError),
  );
  return render(['', ...models.map((m) => m.name)], rows, o, () => false);
}

/** One row per model: name, parameters, multiply-adds, size and the paper's top-1 error (the README table). */
export function modelTable(models: readonly SummarizedModel[], o: TableOptions = {}): string {
  const rows = models.map((m) => [
    [m.name], [formatCount(m.parameterCount())], [formatMacs(m.macs())], [sizeMiB(m)], [reportedError(m)],
    [m.description],
  ]);
  return render(['model', 'params', 'MACs', 'MiB', 'top-1 err (paper)', 'description'], rows, o, (i) => i >= 1 && i <= 4);
}
