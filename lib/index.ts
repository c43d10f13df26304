// crunet's public entry point.
export * from './graph/index.js';
export * from './engine/index.js';
