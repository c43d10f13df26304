// The parts of the `benchmark` package (Benchmark.js 2.x) the suites use; the package ships no types.
declare module 'benchmark' {
  namespace Benchmark {
    interface Deferred {
      resolve(): void;
      benchmark: Benchmark;
    }
    interface Options {
      defer?: boolean;
      fn?: (deferred: Deferred) => void;
      minSamples?: number;
      maxTime?: number;
      minTime?: number;
      initCount?: number;
      delay?: number;
      onError?: (e: { target: Benchmark }) => void;
    }
    interface Stats {
      mean: number;
      rme: number;
      deviation: number;
      sample: number[];
    }
    interface Event {
      target: Benchmark;
    }
    class Suite {
      constructor(name?: string);
      add(name: string, options: Options): this;
      on(type: 'cycle' | 'complete' | 'error' | 'abort', listener: (e: Event) => void): this;
      abort(): this;
      run(options?: { async?: boolean }): this;
      length: number;
    }
  }
  class Benchmark {
    name: string;
    hz: number;
    count: number;
    stats: Benchmark.Stats;
    error?: unknown;
    aborted: boolean;
    toString(): string;
  }
  export = Benchmark;
}
