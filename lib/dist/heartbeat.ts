// What a launched worker and its launcher agree on (lib/dist/worker-preload.ts sends, lib/dist/launch.ts listens).

/** How often a worker reports that its JavaScript thread is alive. */
export const HEARTBEAT_MS = 1000;

/** The message a heartbeat sends over the IPC channel. */
export const HEARTBEAT = 'crunet:heartbeat';

/** Exit code of a worker that ended because its launcher went away. */
export const ORPHAN_EXIT_CODE = 125;
