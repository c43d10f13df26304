import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EpochPoint } from '../lib/train/metrics-log.js';
import { escapeXml, niceTicks, renderPlot, writePlot } from '../lib/train/plot.js';

/** A small XML well-formedness check: balanced tags, quoted attributes, escaped text. Returns the elements. */
function parseXml(xml: string): { name: string; attrs: Record<string, string>; text: string }[] {
  const elements: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const stack: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const re = /<\?[^?]*\?>|<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < xml.length && (m = re.exec(xml))) {
    pos = re.lastIndex;
    if (m[0].startsWith('<?')) continue;
    if (m[5] !== undefined) {
      assert.ok(!/&(?!(lt|gt|amp|quot|apos);)/.test(m[5]), `unescaped & in text ${JSON.stringify(m[5])}`);
      assert.ok(!m[5].includes('>'), `raw > in text ${JSON.stringify(m[5])}`);
      if (stack.length) stack.at(-1)!.text += m[5];
      else assert.equal(m[5].trim(), '', 'text outside the root');
      continue;
    }
    const [, close, name, attrText, selfClose] = m;
    if (close) {
      const open = stack.pop();
      assert.equal(open?.name, name, `</${name}> closes <${open?.name}>`);
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of attrText!.matchAll(/([\w:-]+)="([^"]*)"/g)) {
      assert.ok(!(a[1]! in attrs), `duplicate attribute ${a[1]} on <${name}>`);
      assert.ok(!/&(?!(lt|gt|amp|quot|apos);)/.test(a[2]!), `unescaped & in ${a[1]}`);
      attrs[a[1]!] = a[2]!;
    }
    const el = { name: name!, attrs, text: '' };
    if (!stack.length) assert.equal(elements.length, 0, 'a single root element');
    elements.push(el);
    if (!selfClose) stack.push(el);
  }
  assert.equal(pos, xml.length, `cannot parse at ${pos}: ${JSON.stringify(xml.slice(pos, pos + 60))}`);
  assert.equal(stack.length, 0, `unclosed <${stack.at(-1)?.name}>`);
  return elements;
}

function history(n: number): EpochPoint[] {
  return Array.from({ length: n }, (_, i) => ({
    epoch: i + 1,
    trainLoss: 2 * Math.exp(-i / 5) + 0.1,
    trainAcc: 1 - 0.8 * Math.exp(-i / 5),
    testLoss: 2.2 * Math.exp(-i / 5) + 0.2,
    testAcc: 0.95 - 0.8 * Math.exp(-i / 4) - (i === 7 ? 0.1 : 0),
  }));
}

const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

describe('plot (SVG)', () => {
  it('chooses round axis ticks', () => {
    assert.deepEqual(niceTicks(0, 2.74, 5), { lo: 0, hi: 3, step: 0.5, ticks: [0, 0.5, 1, 1.5, 2, 2.5, 3] });
    assert.deepEqual(niceTicks(16.5, 97, 5).ticks, [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(1, 90, 8).ticks, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    assert.deepEqual(niceTicks(70, 99, 5).ticks, [70, 75, 80, 85, 90, 95, 100]);
    assert.deepEqual(niceTicks(0.1234, 0.1236, 4), { lo: 0.1234, hi: 0.1236, step: 0.00005, ticks: [0.1234, 0.12345, 0.1235, 0.12355, 0.1236] });
    assert.deepEqual(niceTicks(5, 5, 5).ticks, [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]);
    assert.deepEqual(niceTicks(0, 0, 2).ticks, [-1, 0, 1]);
    assert.throws(() => niceTicks(0, NaN), /expected bounds to be finite/);
  });

  it('draws a well-formed chart: two panels, axes, ticks, labels, legend, title, both curves', () => {
    const svg = renderPlot(history(30), { title: 'crunet <small> & "co"', subtitle: "SGD 0.1, batch 128 'cosine'" });
    assert.ok(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="960" height="440" viewBox="0 0 960 440"'));
    const els = parseXml(svg);
    assert.equal(els[0]!.name, 'svg');
    const texts = els.filter((e) => e.name === 'text').map((e) => unescape(e.text));
    assert.ok(texts.includes('crunet <small> & "co"'));
    assert.ok(texts.includes("SGD 0.1, batch 128 'cosine'"));
    assert.equal(unescape(els.find((e) => e.name === 'title')!.text), 'crunet <small> & "co"');
    for (const t of ['Loss', 'Accuracy', 'cross-entropy loss', 'top-1 accuracy (%)', 'train', 'test']) assert.ok(texts.includes(t), t);
    assert.equal(texts.filter((t) => t === 'epoch').length, 2);
    // Tick labels: epochs on both x axes, round numbers on the y axes.
    for (const t of ['0', '10', '20', '30']) assert.ok(texts.filter((x) => x === t).length >= 2, `x tick ${t}`);
    assert.ok(texts.includes('100') && texts.includes('2.5'));
    assert.ok(texts.some((t) => /^best test \d+\.\d\d% at epoch \d+$/.test(t)));
    // One line per series and panel, every coordinate inside the canvas.
    const paths = els.filter((e) => e.name === 'path' && (e.attrs.class === 'train' || e.attrs.class === 'test'));
    assert.equal(paths.length, 4);
    for (const p of paths) {
      const nums = p.attrs.d!.split(/[MLHV,]/).filter(Boolean).map(Number);
      assert.equal(nums.length, 60, 'x and y for each of 30 epochs');
      nums.forEach((v, i) => assert.ok(Number.isFinite(v) && v >= 0 && v <= (i % 2 ? 440 : 960), `${v}`));
    }
    assert.ok(!/NaN|undefined|Infinity|null/.test(svg));
    // Curves: the test line is orange, train blue, as in the legend.
    assert.ok(paths.every((p) => p.attrs.stroke === (p.attrs.class === 'train' ? '#1f77b4' : '#e8710a')));
  });

  it('copes with no data, one epoch and gaps', () => {
    const empty = renderPlot([]);
    parseXml(empty);
    assert.match(empty, /no data yet/);
    const one = renderPlot([{ epoch: 0, trainLoss: 0.6, trainAcc: 0.8 }]);
    const els = parseXml(one);
    assert.equal(els.filter((e) => e.name === 'circle').length, 2 + 2 + 0); // legend markers and the two points
    assert.ok(!/NaN|undefined|Infinity/.test(one));
    const h = history(10);
    h[4]!.testLoss = NaN;
    h[5]!.testAcc = undefined;
    h[9]!.trainLoss = Infinity;
    const gaps = renderPlot(h);
    const paths = parseXml(gaps).filter((e) => e.name === 'path' && e.attrs.class);
    assert.equal(paths.filter((p) => p.attrs.class === 'test').length, 4); // each test curve broken in two
    assert.ok(!/NaN|undefined|Infinity/.test(gaps));
  });

  it('escapes XML', () => {
    assert.equal(escapeXml(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
  });

  it('writes the file atomically', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-plot-'));
    try {
      const file = path.join(dir, 'training.svg');
      writePlot(file, history(3), { title: 'run' });
      writePlot(file, history(4), { title: 'run' });
      assert.equal(fs.readFileSync(file, 'utf8'), renderPlot(history(4), { title: 'run' }));
      assert.deepEqual(fs.readdirSync(dir), ['training.svg']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
