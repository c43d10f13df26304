// Training progress on a terminal: one line redrawn in place on a TTY, a few plain lines otherwise.
//
//   TTY      epoch 3/90 [#########---------------]  120/390  1.2k img/s  loss 0.4321  acc 87.5%  ETA 0:34
//   not TTY  epoch 3/90 step 98/390 (25%)  1.2k img/s  loss 0.4321  acc 87.5%  ETA 1:02
//
// Not on a TTY (CI logs, files), a line is printed each time the epoch passes another `everyPercent`
// (default 25 %), so an epoch takes at most 100 / everyPercent lines plus its closing line. The format
// functions are pure and exported for tests and for other reports.

/** "m:ss", or "h:mm:ss" from an hour on; "--:--" when unknown (not finite or negative). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const t = Math.round(seconds);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Seconds left for `total - done` more units at the average rate so far; NaN while nothing is done. */
export function etaSeconds(done: number, total: number, elapsedSeconds: number): number {
  if (!(done > 0) || !(elapsedSeconds >= 0) || !(total >= done)) return NaN;
  return ((total - done) * elapsedSeconds) / done;
}

/** A rate with three significant digits and k/M suffixes: "8.50 img/s", "853 img/s", "8.53k img/s", "1.20M img/s". */
export function formatRate(perSecond: number, unit = 'img/s'): string {
  if (!Number.isFinite(perSecond) || perSecond < 0) return `-- ${unit}`;
  const [v, suffix] = perSecond >= 1e6 ? [perSecond / 1e6, 'M'] : perSecond >= 1e3 ? [perSecond / 1e3, 'k'] : [perSecond, ''];
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${suffix} ${unit}`;
}

/** A fraction as a percentage with one decimal: 0.8753 -> "87.5%". */
export function formatPercent(fraction: number): string {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(1)}%` : '--%';
}

/** A loss with four decimals below 10, four significant digits above. */
export function formatLoss(loss: number): string {
  if (!Number.isFinite(loss)) return String(loss);
  return Math.abs(loss) < 10 ? loss.toFixed(4) : loss.toPrecision(4);
}

/** A text bar of `width` cells: "[#####-----]" (width includes the brackets). */
export function formatBar(fraction: number, width: number): string {
  const inner = Math.max(0, width - 2);
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.floor(f * inner);
  return `[${'#'.repeat(full)}${'-'.repeat(inner - full)}]`;
}

export interface ProgressState {
  epoch: number;
  /** Replaces "epoch N/M" at the head of the line (e.g. "eval"). */
  label?: string;
  epochs?: number;
  /** Steps done in this epoch, and the epoch's total. */
  step: number;
  steps: number;
  imagesPerSec?: number;
  loss?: number;
  acc?: number;
  etaSeconds?: number;
}

function fields(s: ProgressState): string[] {
  const out: string[] = [];
  if (s.imagesPerSec !== undefined) out.push(formatRate(s.imagesPerSec));
  if (s.loss !== undefined) out.push(`loss ${formatLoss(s.loss)}`);
  if (s.acc !== undefined) out.push(`acc ${formatPercent(s.acc)}`);
  out.push(`ETA ${formatDuration(s.etaSeconds ?? NaN)}`);
  return out;
}

const epochLabel = (s: ProgressState) => s.label ?? `epoch ${s.epoch}${s.epochs !== undefined ? `/${s.epochs}` : ''}`;

/**
 * The TTY line, fitted to `columns - 1` (writing the last column wraps on some terminals): the bar
 * shrinks first (down to 10 cells), then goes; then the rate and the accuracy go; then the line is cut.
 */
export function formatProgressLine(s: ProgressState, columns = 100): string {
  const w = String(s.steps).length;
  const count = `${String(s.step).padStart(w)}/${s.steps}`;
  const head = epochLabel(s);
  const max = Math.max(0, columns - 1);
  const variants = [s, { ...s, imagesPerSec: undefined }, { ...s, imagesPerSec: undefined, acc: undefined }];
  for (const [i, v] of variants.entries()) {
    const rest = `${count}  ${fields(v).join('  ')}`;
    const barWidth = Math.min(32, max - head.length - rest.length - 3);
    if (i === 0 && barWidth >= 10) return `${head} ${formatBar(s.step / s.steps, barWidth)}  ${rest}`;
    const line = `${head}  ${rest}`;
    if (line.length <= max || i === variants.length - 1) return line.slice(0, max);
  }
  return '';
}

/** The plain (non-TTY) line. */
export function formatProgressText(s: ProgressState): string {
  const pct = s.steps > 0 ? Math.floor((100 * s.step) / s.steps) : 0;
  return `${epochLabel(s)} step ${s.step}/${s.steps} (${pct}%)  ${fields(s).join('  ')}`;
}

/** Where the bar writes: a stream like process.stderr. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  /** Redraw in place (default: stream.isTTY). */
  tty?: boolean;
  /** Not on a TTY: print a line each time the epoch passes another this many percent (default 25). */
  everyPercent?: number;
  /** On a TTY: redraw at most this often, except for the last step (default 100 ms). */
  minIntervalMs?: number;
  /** The clock in ms (for tests). */
  now?: () => number;
}

export interface ProgressUpdate {
  /** Steps done in this epoch. */
  step: number;
  /** Images done in this epoch. */
  images?: number;
  /** Running mean loss and accuracy (fraction) of the epoch so far. */
  loss?: number;
  acc?: number;
}

/** One epoch at a time: start(), update() after every step, end() with a closing summary. */
export class ProgressBar {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly everyPercent: number;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private state: ProgressState | undefined;
  private t0 = 0;
  private lastDraw = -Infinity;
  private nextPercent = 0;
  private drawn = false;

  constructor(opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? !!this.stream.isTTY;
    this.everyPercent = opts.everyPercent ?? 25;
    if (!(this.everyPercent > 0 && this.everyPercent <= 100)) throw new RangeError(`ProgressBar: expected everyPercent to be in (0, 100], but received ${this.everyPercent}`);
    this.minIntervalMs = opts.minIntervalMs ?? 100;
    this.now = opts.now ?? (() => performance.now());
  }

  /** `label` replaces "epoch N/M" on the line (an evaluation's progress: "eval"). */
  start(epoch: number, steps: number, epochs?: number, label?: string): void {
    this.t0 = this.now();
    this.lastDraw = -Infinity;
    this.nextPercent = this.everyPercent;
    this.state = { epoch, epochs, step: 0, steps, ...(label !== undefined ? { label } : {}) };
    if (this.tty) this.draw();
  }

  update(u: ProgressUpdate): void {
    const s = this.state;
    if (!s) throw new Error('ProgressBar.update: call start() first');
    const elapsed = (this.now() - this.t0) / 1000;
    s.step = u.step;
    s.loss = u.loss;
    s.acc = u.acc;
    s.imagesPerSec = u.images !== undefined && elapsed > 0 ? u.images / elapsed : undefined;
    s.etaSeconds = etaSeconds(u.step, s.steps, elapsed);
    if (this.tty) {
      if (u.step >= s.steps || this.now() - this.lastDraw >= this.minIntervalMs) this.draw();
    } else if (s.steps > 0 && (100 * u.step) / s.steps >= this.nextPercent && u.step < s.steps) {
      while ((100 * u.step) / s.steps >= this.nextPercent) this.nextPercent += this.everyPercent;
      this.stream.write(formatProgressText(s) + '\n');
    }
  }

  /** Prints a message without breaking the bar (TTY: clears it, prints, redraws). */
  log(message: string): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(message.endsWith('\n') ? message : message + '\n');
    if (this.tty && this.state && this.drawn) this.draw();
  }

  /** Closes the epoch: the TTY line is replaced by `summary` (or kept), and a plain line is printed otherwise. */
  end(summary?: string): void {
    const s = this.state;
    if (!s) return;
    if (this.tty) {
      if (summary !== undefined) this.stream.write(`\r\x1b[K${summary}\n`);
      else this.stream.write('\n');
    } else {
      this.stream.write((summary ?? formatProgressText(s)) + '\n');
    }
    this.state = undefined;
    this.drawn = false;
  }

  private draw(): void {
    this.lastDraw = this.now();
    this.drawn = true;
    this.stream.write(`\r${formatProgressLine(this.state!, this.stream.columns ?? 100)}\x1b[K`);
  }
}
