import type { Init, ParamIR } from './ir.js';

/**
 * A named, trainable (or buffer) tensor. Passing the same Parameter to several layers IS sharing:
 * every use reads the same values, the gradient is the sum over the uses and the optimizer updates it
 * once per step. That is how a CRU factor set is expressed.
 */
export class Parameter {
  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    readonly init: Init,
    readonly trainable = true,
    readonly weightDecay = true,
  ) {
    // Argument errors as the builder's (lib/graph/builder.ts): TypeError for the wrong kind, RangeError for a bad value.
    if (typeof name !== 'string' || name === '') {
      const msg = `Parameter: expected a non-empty name, but received ${JSON.stringify(name)}`;
      throw typeof name === 'string' ? new RangeError(msg) : new TypeError(msg);
    }
    if (!Array.isArray(shape)) throw new TypeError(`Parameter ${name}: expected a shape (an array of positive integers), but received ${JSON.stringify(shape)}`);
    if (!shape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new RangeError(`Parameter ${name}: expected a shape of positive integers, but received [${shape.join(',')}]`);
    }
  }

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  toIR(): ParamIR {
    return {
      name: this.name,
      shape: [...this.shape],
      init: this.init,
      trainable: this.trainable,
      weightDecay: this.weightDecay,
    };
  }
}

/** He (Kaiming) normal init in fan-out mode, as torchvision initialises convolutions. */
export function kaimingNormal(fan: number): Init {
  return { dist: 'normal', std: Math.sqrt(2 / fan) };
}

/** PyTorch's default init for nn.Linear weight and bias: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
export function linearDefault(fanIn: number): Init {
  const b = 1 / Math.sqrt(fanIn);
  return { dist: 'uniform', low: -b, high: b };
}
