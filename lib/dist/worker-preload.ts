// Loaded (node --require) into every worker that lib/dist/launch.ts starts, before the worker's own script:
// the two things the launcher needs from each worker, whatever that script is.
//
// - A heartbeat over the IPC channel every HEARTBEAT_MS while the worker's JavaScript thread is free: a
//   worker whose thread is stuck (an endless loop, a blocking call that never returns) stops sending it,
//   and the launcher ends the job after its --hang-timeout. A collective that waits on a missing peer does
//   not block the thread; the process group's own timeout ends that one.
// - Parent-death: when the launcher dies without stopping the workers (kill -9, a crash), the kernel kills
//   the worker (the launcher starts it through setpriv --pdeathsig KILL, on Linux), and the IPC channel
//   closes and the worker exits, so no worker is left running without its launcher, even one whose
//   JavaScript thread is busy. The parent-death signal only covers a launcher that dies after it was set:
//   a worker whose parent is no longer the launcher that started it has lost it already, and exits.

import { HEARTBEAT, HEARTBEAT_MS, ORPHAN_EXIT_CODE } from './heartbeat.js';

if (typeof process.send === 'function' && process.env.CRUNET_LAUNCHED === '1') {
  // Neither the channel nor the timer may keep a finished worker alive.
  (process.channel as { unref?: () => void } | undefined)?.unref?.();
  const beat = () => {
    if (process.connected) process.send!(HEARTBEAT, undefined, {}, () => {});
  };
  beat();
  setInterval(beat, HEARTBEAT_MS).unref();
  process.on('disconnect', () => process.exit(ORPHAN_EXIT_CODE));
  const launcher = process.env.CRUNET_LAUNCHER_PID;
  if (launcher !== undefined && String(process.ppid) !== launcher) process.exit(ORPHAN_EXIT_CODE);
  delete process.env.CRUNET_LAUNCHER_PID;
  // Workers started by a worker (child_process.fork) must not inherit the launcher's marker.
  delete process.env.CRUNET_LAUNCHED;
}
