// What TensorBoard shows of a run directory's scalars: its event files read in name order (as TensorBoard's
// directory watcher does), each SessionLog START dropping the points read so far at its step or later (as
// its event accumulator's purge keeps only the points of a lower step). scripts/tensorboard-read.py shows
// the same with TensorBoard itself.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Per tag, the points [step, value] in the order TensorBoard keeps them. */
export type ScalarView = Map<string, [number, number][]>;

function* fields(buf: Buffer): Generator<{ field: number; value: bigint | Buffer }> {
  let o = 0;
  const varint = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      const b = buf[o++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  while (o < buf.length) {
    const key = Number(varint()), field = key >> 3, wire = key & 7;
    if (wire === 0) yield { field, value: varint() };
    else if (wire === 1) (yield { field, value: buf.subarray(o, o + 8) }), (o += 8);
    else if (wire === 5) (yield { field, value: buf.subarray(o, o + 4) }), (o += 4);
    else if (wire === 2) {
      const len = Number(varint());
      yield { field, value: buf.subarray(o, o + len) };
      o += len;
    } else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
}

export function tensorBoardView(dir: string): ScalarView {
  const view: ScalarView = new Map();
  const files = fs.readdirSync(dir).filter((f) => f.includes('tfevents')).sort();
  for (const f of files) {
    const buf = fs.readFileSync(path.join(dir, f));
    for (let o = 0; o < buf.length; ) {
      const len = Number(buf.readBigUInt64LE(o));
      const event = buf.subarray(o + 12, o + 12 + len);
      o += 16 + len;
      let step = 0, start = false;
      const values: [string, number][] = [];
      for (const { field, value } of fields(event)) {
        if (field === 2) step = Number(value as bigint);
        else if (field === 7) start = [...fields(value as Buffer)].some((s) => s.field === 1 && s.value === 1n);
        else if (field === 5) {
          for (const v of fields(value as Buffer)) {
            let tag = '', x = NaN;
            for (const p of fields(v.value as Buffer)) {
              if (p.field === 1) tag = (p.value as Buffer).toString('utf8');
              else if (p.field === 2) x = (p.value as Buffer).readFloatLE(0);
            }
            values.push([tag, x]);
          }
        }
      }
      if (start) for (const [tag, points] of view) view.set(tag, points.filter(([s]) => s < step));
      for (const [tag, x] of values) view.set(tag, [...(view.get(tag) ?? []), [step, x]]);
    }
  }
  return view;
}
